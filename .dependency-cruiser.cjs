/**
 * The layers of docs/architecture.md ("Layers"), checked by test/unit/layers.test.ts (`npm test`) and
 * by `npm run layers`. Paths are relative to the repository root. Type-only imports count (the
 * TypeScript source is read before compilation), except where a rule says otherwise.
 */
const LAYERS = ['core', 'contract', 'workflows', 'infra', 'activities', 'workers', 'gateway', 'system'];
const below = (...folders) => `^(${folders.join('|')})/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-is-pure',
      comment: 'core/ is pure domain code: it imports zod and core/ only (no Node APIs, no Temporal, no I/O).',
      severity: 'error',
      from: { path: '^core/' },
      to: { pathNot: '^(core/|node_modules/zod/)' },
    },
    {
      name: 'contract-is-workflow-safe',
      comment: 'contract/ is imported by workflows: core/, contract/ and the Temporal workflow, common and client packages only.',
      severity: 'error',
      from: { path: '^contract/' },
      to: { pathNot: '^(core/|contract/|node_modules/@temporalio/(workflow|common|client)/)' },
    },
    {
      name: 'workflows-are-deterministic',
      comment: 'workflows/ imports core/, contract/, workflows/, @temporalio/workflow and @temporalio/common, and activities as types only.',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { pathNot: '^(core/|contract/|workflows/|activities/|node_modules/@temporalio/(workflow|common)/)' },
    },
    {
      name: 'workflows-import-activity-types-only',
      comment: 'A workflow proxies its activities (proxyActivities<typeof …>): `import type` from activities/, never a value.',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { path: '^activities/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'infra-is-shared-below',
      comment: 'infra/ is used by the gateway and the activities alike, so it imports neither, nor what sits above them.',
      severity: 'error',
      from: { path: '^infra/' },
      to: { path: below('gateway', 'activities', 'workers', 'workflows', 'system') },
    },
    {
      name: 'activities-stay-below-entry-points',
      comment: 'activities/ holds activity factories: it imports infra/, core/, contract/, never the gateway, workers, workflows or the composition root.',
      severity: 'error',
      from: { path: '^activities/' },
      to: { path: below('gateway', 'workers', 'workflows', 'system') },
    },
    {
      name: 'gateway-not-activities-or-workflows',
      comment: 'gateway/ reaches Temporal through contract/ and shared code through infra/: no activities/, workers/, workflows/ (not even types) or system/.',
      severity: 'error',
      from: { path: '^gateway/' },
      to: { path: below('activities', 'workers', 'workflows', 'system') },
    },
    {
      name: 'workers-not-gateway',
      comment: 'workers/ runs workflows and activities; the gateway and the composition root are not theirs to import.',
      severity: 'error',
      from: { path: '^workers/' },
      to: { path: below('gateway', 'system') },
    },
    {
      name: 'no-circular',
      comment: 'A cycle ties modules together so that neither can be read, tested or moved alone.',
      severity: 'error',
      from: { path: below(...LAYERS, 'scripts') },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(test|bench|engines|data)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['cjs', 'es6'],
  },
};
