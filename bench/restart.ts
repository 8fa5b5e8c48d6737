/**
 * Restart time: `node bin/docket start` (npm start, provisioning included) stopped and started again on
 * the same data folder, with everything built, until the gateway's /healthz answers 200; and, as the
 * baseline in the same run, the bare Temporal dev server (`temporal server start-dev` on its own port
 * and SQLite file) restarted until it answers. Rounds interleave the two; one start of each first
 * (creates the databases and Docket's caches) is not counted. Medians of the rounds, and each phase
 * of Docket's start from its launcher's log lines.
 *
 *   npm run bench:restart [-- --rounds 5]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { devServerCommand, freePort, waitForTemporal } from '../system/temporal-dev';
import { median, reportFigures, sleep } from './lib';

const ROOT = resolve(__dirname, '..');
const START_LIMIT_MS = 5 * 60_000;
const STOP_LIMIT_MS = 60_000;
const POLL_EVERY_MS = 50;

/** Launcher log lines that mark where a start's time goes (the engine images' check, `provisioned`, overlaps the roles' start). */
const PHASES: Array<[string, RegExp]> = [
  ['provisioned', /provision: done/],
  ['roles started', /supervisor: (worker|engines|gateway) started/],
  ['dev server answers', /temporal: the dev server answers/],
  ['gateway ready', /supervisor: gateway ready/],
  ['engines ready', /supervisor: engines ready/],
  ['worker ready', /supervisor: worker ready/],
  ['all ready', /docket: running;/],
];

interface Round {
  healthzMs: number;
  phases: Map<string, number>;
}

function rounds(argv: string[]): number {
  const at = argv.indexOf('--rounds');
  const value = Number(at >= 0 ? argv[at + 1] : 5);
  if (!Number.isInteger(value) || value < 1 || value > 20) throw new Error('--rounds takes a whole number from 1 to 20');
  return value;
}

function healthz(port: number): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
    req.end();
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once('exit', () => done());
  });
}

/** The process a round is timing, stopped with the bench when the bench is interrupted. */
let current: ChildProcess | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (current) void stop(current).finally(() => process.exit(130));
    else process.exit(130);
  });
}

/** SIGTERM, then SIGKILL to the process group if it does not stop in time. */
async function stop(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, STOP_LIMIT_MS);
  await exited(child);
  clearTimeout(timer);
}

async function startDocket(env: NodeJS.ProcessEnv, gatewayPort: number): Promise<Round> {
  const started = performance.now();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'docket'), 'start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  current = child;
  const phases = new Map<string, number>();
  let output = '';
  const watch = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
    const at = performance.now() - started;
    for (const [name, pattern] of PHASES) if (!phases.has(name) && pattern.test(output)) phases.set(name, at);
  };
  child.stdout!.on('data', watch);
  child.stderr!.on('data', watch);
  try {
    const deadline = started + START_LIMIT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docket start exited with ${child.exitCode}:\n${output.slice(-3000)}`);
      if (await healthz(gatewayPort)) break;
      if (performance.now() > deadline) throw new Error(`the gateway did not answer within ${START_LIMIT_MS / 1000}s:\n${output.slice(-3000)}`);
      await sleep(POLL_EVERY_MS);
    }
    const healthzMs = performance.now() - started;
    // The rest of the roles finish starting before the stop, so the next round starts from a clean stop.
    for (let waited = 0; !phases.has('all ready') && waited < START_LIMIT_MS; waited += 100) {
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    return { healthzMs, phases };
  } finally {
    await stop(child);
  }
}

async function startDevServer(dir: string, port: number): Promise<number> {
  const { command, args } = devServerCommand({ port, dbFile: join(dir, 'baseline.db') });
  const started = performance.now();
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  current = child;
  let gone: string | undefined;
  child.on('exit', (code, signal) => { gone = `exited with ${signal ?? code}`; });
  try {
    await waitForTemporal(`127.0.0.1:${port}`, () => gone, START_LIMIT_MS);
    return performance.now() - started;
  } finally {
    await stop(child);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const count = rounds(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-restart-'));
  try {
    mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o700 });
    const ports = { gateway: await freePort(), worker: await freePort(), engines: await freePort(), temporal: await freePort(), ui: await freePort(), baseline: await freePort() };
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DOCKET_DATA_DIR: join(dir, 'data'),
      DOCKET_HOST: '127.0.0.1',
      DOCKET_PORT: String(ports.gateway),
      DOCKET_WORKER_PORT: String(ports.worker),
      DOCKET_ENGINES_PORT: String(ports.engines),
      DOCKET_TEMPORAL_PORT: String(ports.temporal),
      DOCKET_TEMPORAL_UI_PORT: String(ports.ui),
      DOCKET_QUEUE_PREFIX: `bench-restart-${process.pid}-`,
    };
    delete env.TEMPORAL_ADDRESS;
    delete env.DOCKET_SKIP_PROVISION;

    process.stdout.write('first start of each (not counted)\n');
    await startDocket(env, ports.gateway);
    await startDevServer(dir, ports.baseline);
    const docket: Round[] = [];
    const baseline: number[] = [];
    for (let round = 1; round <= count; round += 1) {
      const restart = await startDocket(env, ports.gateway);
      docket.push(restart);
      const server = await startDevServer(dir, ports.baseline);
      baseline.push(server);
      const phases = PHASES.map(([name]) => `${name} ${restart.phases.has(name) ? seconds(restart.phases.get(name)!) : '-'}`).join(', ');
      process.stdout.write(`round ${round}: docket /healthz ${seconds(restart.healthzMs)} (${phases}); dev server alone ${seconds(server)}\n`);
    }
    const docketMs = median(docket.map((round) => round.healthzMs));
    const baselineMs = median(baseline);
    const phaseMedians = PHASES.map(([name]) => {
      const values = docket.map((round) => round.phases.get(name)).filter((value): value is number => value !== undefined);
      return `${name} ${values.length ? seconds(median(values)) : '-'}`;
    });
    process.stdout.write(`medians of ${count}: phases since the launcher started: ${phaseMedians.join(', ')}\n`);
    reportFigures('restart', [{
      figure: 'restart of npm start, everything built, until the gateway answers /healthz',
      docket: seconds(docketMs),
      baseline: `${seconds(baselineMs)} (bare Temporal dev server start)`,
      ratio: docketMs / baselineMs,
      goal: '≤ 8 s',
    }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
