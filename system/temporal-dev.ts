import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../contract/messages';

/** Where the Temporal CLI is: TEMPORAL_CLI, PATH, or the project's tools folder (scripts/provision.sh). */
export function findTemporalCli(root = process.cwd()): string {
  const candidates = [
    process.env.TEMPORAL_CLI,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'temporal')),
    join(process.env.DOCKET_TOOLS_DIR ?? join(root, '.tools'), 'bin', 'temporal'),
  ];
  const found = candidates.find((path) => path && existsSync(path));
  if (!found) throw new Error('the Temporal CLI was not found: run npm run setup (it builds it with Go), or set TEMPORAL_CLI');
  return found;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether nothing listens on `host:port` yet: binding there is the one test that matches what the server will do. */
export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(false);
      else reject(error);
    });
    server.listen({ port, host }, () => server.close(() => resolve(true)));
  });
}

export interface DevServerOptions {
  port: number;
  uiPort?: number;
  /** SQLite file; in memory when absent. */
  dbFile?: string;
  logFile?: string;
  namespace?: string;
  /**
   * SQLite pragmas for `dbFile`; DURABLE_ACROSS_PROCESS_CRASHES unless given (`{}` keeps SQLite's
   * own defaults, which bench/orchestration.ts measures against).
   */
  sqlitePragmas?: Record<string, string>;
}

/**
 * A write-ahead log with `synchronous=normal`: a commit is in the log before the server answers, so a
 * crash of the server or of any other process loses nothing; only a power loss or a kernel crash can
 * lose the last commits before a checkpoint. The rollback journal with `synchronous=full` (SQLite's
 * default) survives those too, at two or more fsyncs per commit, which about halves how many
 * workflows a second the dev server runs (README, Benchmarks). A machine that must survive power
 * loss runs the production server on PostgreSQL (npm run temporal).
 */
export const DURABLE_ACROSS_PROCESS_CRASHES: Readonly<Record<string, string>> = { journal_mode: 'wal', synchronous: 'normal' };

export interface DevServer {
  address: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** The `temporal` command line of a dev server with Updates enabled and Docket's search attributes registered. */
export function devServerCommand(options: DevServerOptions): { command: string; args: string[] } {
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(options.port),
    '--namespace', options.namespace ?? 'default',
    '--log-level', 'warn',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value', 'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    '--dynamic-config-value', 'frontend.workerVersioningWorkflowAPIs=true',
  ];
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  if (options.dbFile) {
    args.push('--db-filename', options.dbFile);
    for (const [name, value] of Object.entries(options.sqlitePragmas ?? DURABLE_ACROSS_PROCESS_CRASHES)) args.push('--sqlite-pragma', `${name}=${value}`);
  }
  if (options.uiPort) args.push('--ui-port', String(options.uiPort));
  else args.push('--headless');
  return { command: findTemporalCli(), args };
}

/**
 * Set by npm start's launcher for the roles it starts beside its dev server: a role loads its code,
 * then waits (waitForTemporal) for the server to answer before it connects, instead of failing on a
 * server that is still starting.
 */
export const AWAIT_TEMPORAL_ENV = 'DOCKET_AWAIT_TEMPORAL';

/**
 * Waits until the server at `address` answers, for up to `limitMs` (the SDK's own helper allows only
 * a few seconds); `exited` says why to stop waiting early, when the server process is already gone.
 */
export async function waitForTemporal(address: string, exited: () => string | undefined, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(`the Temporal dev server ${gone}`);
    try {
      // No retry interceptor: this loop is the retry. The SDK's own backs off up to 5 s between tries,
      // so a probe could go on waiting seconds after the server answered.
      const connection = await Connection.connect({ address, connectTimeout: 1000, interceptors: [] });
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`the Temporal dev server did not answer on ${address} within ${limitMs / 1000}s: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Starts a dev server as a plain child of this process (the tests' shared server) and waits until it answers. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const { command, args } = devServerCommand(options);
  const out = options.logFile ? openSync(options.logFile, 'a', 0o600) : 'ignore';
  const child = spawn(command, args, { stdio: ['ignore', out, out], detached: false });
  const address = `127.0.0.1:${options.port}`;
  let exited: string | undefined;
  child.on('exit', (code, signal) => { exited = `exited with ${signal ?? code}`; });
  // A CLI that cannot be started (missing, not executable) is this start's error, not the process's end.
  child.on('error', (error) => { exited = `could not be started (${error.message})`; });
  try {
    await waitForTemporal(address, () => exited && `${exited}${options.logFile ? `; see ${options.logFile}` : ''}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    address,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => { clearTimeout(force); resolve(); });
        child.kill('SIGTERM');
      }),
  };
}
