/** Unit tests need nothing; integration tests share one Temporal dev server and one Docker engine. */
const transform = { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] };

module.exports = {
  testTimeout: 180000,
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  projects: [
    { displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'], transform },
    { displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'], transform, testTimeout: 300000 },
  ],
};
