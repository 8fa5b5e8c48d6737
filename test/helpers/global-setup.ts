import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { freePort, startDevServer } from '../../system/temporal-dev';

/**
 * Once per test run: provision (Temporal CLI, Docker, base and engine images), start a real Temporal
 * dev server on a free port, and bundle the workflows once for every worker the tests create.
 */
export default async function globalSetup(): Promise<void> {
  const root = resolve(__dirname, '../..');
  const provision = spawnSync('bash', [join(root, 'scripts/provision.sh'), 'temporal', 'docker', 'base'], { stdio: 'inherit', cwd: root });
  if (provision.status !== 0) throw new Error('provisioning failed: see the lines above');
  // An engine that does not build fails the tests that use it, naming its image; the others still run.
  const engines = spawnSync('bash', [join(root, 'scripts/provision.sh'), 'engines'], { stdio: 'inherit', cwd: root });
  if (engines.status !== 0) process.stderr.write('global setup: some engine images did not build (see above)\n');
  // Only the browser tests need Chromium; without it they fail naming it, and the others still run.
  const chromium = spawnSync('bash', [join(root, 'scripts/provision.sh'), 'chromium'], { stdio: 'inherit', cwd: root });
  if (chromium.status !== 0) process.stderr.write('global setup: Chromium is missing, so the browser tests will fail (see above)\n');
  const dir = mkdtempSync(join(tmpdir(), 'docket-test-'));
  const server = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const { code } = await bundleWorkflowCode({ workflowsPath: join(root, 'workflows'), logger: quietLogger });
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, code);
  process.env.DOCKET_TEST_TEMPORAL = server.address;
  process.env.DOCKET_TEST_BUNDLE = bundlePath;
  process.env.DOCKET_TEST_DIR = dir;
  (globalThis as { __docketTemporal?: typeof server }).__docketTemporal = server;
}

const quietLogger = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (message: string) => process.stderr.write(`bundle: ${message}\n`),
  error: (message: string) => process.stderr.write(`bundle: ${message}\n`),
};
