import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger, type Logger } from '../../infra/log';
import type { AuditSink } from '../../gateway/audit';
import { loadConfig, type Config } from '../../core/config';
import { startSystem, type System } from '../../system/start-system';

export const ROOT = resolve(__dirname, '../..');

/** The Temporal dev server the global setup started. */
export function temporalAddress(): string {
  const address = process.env.DOCKET_TEST_TEMPORAL;
  if (!address) throw new Error('no test Temporal server: run the tests through jest (its global setup starts one)');
  return address;
}

export interface TestSystem extends System {
  config: Config;
  dataDir: string;
  baseUrl: string;
  close(): Promise<void>;
}

/**
 * All of Docket in this process against the shared test server, with its own data folder and its own
 * task-queue prefix so tests never take each other's work.
 */
export interface TestSystemOptions {
  enginesDir?: string;
  env?: Record<string, string>;
  log?: Logger;
  workers?: boolean;
  mainWorker?: boolean;
  engineWorkers?: boolean;
  gateway?: boolean;
  /** Share another test system's data folder and task queues (a second process of one installation). */
  shareWith?: TestSystem;
  /** Where the gateway's audit lines go; dropped unless given, to keep test output readable. */
  audit?: AuditSink;
}

export async function startTestSystem(options: TestSystemOptions = {}): Promise<TestSystem> {
  const shared = options.shareWith;
  const dataDir = shared?.dataDir ?? mkdtempSync(join(tmpdir(), 'docket-data-'));
  const config = loadConfig({
    TEMPORAL_ADDRESS: temporalAddress(),
    DOCKET_DATA_DIR: dataDir,
    DOCKET_ENGINES_DIR: options.enginesDir ?? shared?.config.DOCKET_ENGINES_DIR ?? join(ROOT, 'engines'),
    DOCKET_PORT: '0',
    DOCKET_QUEUE_PREFIX: shared?.config.DOCKET_QUEUE_PREFIX ?? `t${randomBytes(4).toString('hex')}-`,
    ...options.env,
  });
  const system = await startSystem({
    config,
    log: options.log ?? silentLogger,
    // The Temporal connection settings (TEMPORAL_TLS_*, profiles) are read from the environment, as in production.
    env: options.env ? { ...process.env, ...options.env } : undefined,
    workflowBundle: { codePath: process.env.DOCKET_TEST_BUNDLE! },
    workers: options.workers,
    mainWorker: options.mainWorker,
    engineWorkers: options.engineWorkers,
    gateway: options.gateway,
    audit: options.audit ?? (() => undefined),
  });
  return {
    ...system,
    config,
    dataDir,
    baseUrl: system.url ?? '',
    async close() {
      await system.stop();
      if (!shared) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function poll<T>(fn: () => Promise<T>, done: (value: T) => boolean, what: string, limitMs = 120_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await fn();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
