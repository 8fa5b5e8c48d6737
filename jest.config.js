/** Unit tests need nothing; integration tests share one Temporal dev server and one Docker engine. */
const transform = { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] };

module.exports = {
  testTimeout: 240000,
  transform,
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  projects: [
    { displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'], transform },
    { displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], transform, slowTestThreshold: 60 },
    { displayName: 'browser', testMatch: ['<rootDir>/test/browser/**/*.test.ts'], transform, slowTestThreshold: 60 },
  ],
};
