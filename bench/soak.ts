/**
 * A long run at a steady rate: every role as its own child process (gateway, main worker, engine
 * workers, as `npm start` runs them) against a Temporal dev server of its own, `--rate` jobs a second
 * (the same mix as bench/load.ts) for `--minutes`. The resident memory of every role is sampled each
 * minute and printed as a table, then each role's slope (least squares, MiB per minute over the run
 * after its first minute, when caches and JIT have warmed): a slope that stays above zero run after
 * run is a leak. At the end every accepted job must reach a terminal state.
 *
 *   npm run bench:soak -- --minutes 30 [--rate 2]
 *
 * Not run in CI: the burst test (test/integration/burst.test.ts) checks the gateway's memory over one
 * burst; minutes of steady load do not fit its budget. Loopback only; needs npm run setup.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startDevServer } from '../system/temporal-dev';
import { awaitTerminal, mib, type Outcome, type Role, residentBytes, sendBurst, sleep, startRole, summarize } from './load';

const MINUTE_MS = 60_000;
const ROLES = ['gateway', 'worker', 'engines'] as const;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { minutes: { type: 'string', default: '30' }, rate: { type: 'string', default: '2' } } });
  const minutes = Number(values.minutes);
  const rate = Number(values.rate);
  if (!Number.isInteger(minutes) || minutes < 2) throw new Error('--minutes takes a whole number of at least 2 (one to warm up, one to compare)');
  if (!Number.isInteger(rate) || rate <= 0 || rate > 50) throw new Error('--rate takes jobs a second, a whole number from 1 to 50');

  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-soak-'));
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const ports = { gateway: await freePort(), worker: await freePort(), engines: await freePort() };
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal.address,
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_QUEUE_PREFIX: `soak${randomBytes(3).toString('hex')}-`,
    DOCKET_HOST: '127.0.0.1',
    DOCKET_PORT: String(ports.gateway),
    DOCKET_WORKER_PORT: String(ports.worker),
    DOCKET_ENGINES_PORT: String(ports.engines),
    DOCKET_ANONYMOUS: 'analyze',
    // One address sends every job and every poll; the per-minute limit is not what this measures.
    DOCKET_RATE_LIMIT: '0',
    DOCKET_LOG_LEVEL: 'warn',
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
  };
  mkdirSync(env.DOCKET_SCHEDULES_DIR);
  const roles = new Map<(typeof ROLES)[number], Role>();
  process.once('exit', () => {
    for (const child of [...[...roles.values()].map((role) => role.process), temporal.process]) if (child.exitCode === null) child.kill('SIGKILL');
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    for (const role of ROLES) roles.set(role, await startRole(role, env, `http://127.0.0.1:${ports[role]}`, join(dir, `${role}.log`)));
    const baseUrl = roles.get('gateway')!.url;
    const samples: Array<Record<string, number>> = [];
    const sample = () => samples.push(Object.fromEntries(ROLES.map((role) => [role, residentBytes(roles.get(role)!.process.pid!)])));
    sample();
    const outcomes: Outcome[] = [];
    const started = Date.now();
    let nextSample = started + MINUTE_MS;
    for (let second = 0; second < minutes * 60; second += 1) {
      const tick = started + (second + 1) * 1000;
      outcomes.push(...await sendBurst({ baseUrl, jobs: rate, clients: rate, distinct: 20, seed: 'soak' }));
      if (Date.now() >= nextSample) {
        sample();
        nextSample += MINUTE_MS;
        process.stdout.write(`minute ${samples.length - 1}: ${ROLES.map((role) => `${role} ${mib(samples.at(-1)![role])} MiB`).join(', ')}\n`);
      }
      await sleep(Math.max(0, tick - Date.now()));
    }
    // The last minute's sample can fall just after the loop's last tick.
    if (samples.length <= minutes) sample();
    const ids = outcomes.flatMap((o) => (o.kind === 'accepted' ? [o.id] : []));
    const settled = await awaitTerminal(baseUrl, ids, 15 * MINUTE_MS);
    const summary = summarize(outcomes);

    console.log(`soak bench: ${minutes} min at ${rate} jobs/s; ${summary.accepted} accepted, ${summary.refused429 + summary.refused503} refused, ${summary.failed} failed; ${settled.terminal.size} of ${ids.length} terminal, ${settled.open.length} open`);
    console.log(`  accept latency p50 ${summary.p50.toFixed(0)} ms, p99 ${summary.p99.toFixed(0)} ms`);
    console.log(`  minute  ${ROLES.map((role) => role.padStart(9)).join(' ')}   (resident MiB)`);
    samples.forEach((row, minute) => console.log(`  ${String(minute).padStart(6)}  ${ROLES.map((role) => mib(row[role]).padStart(9)).join(' ')}`));
    console.log(`  slope   ${ROLES.map((role) => slope(samples.slice(1).map((row) => row[role] / (1024 * 1024))).toFixed(2).padStart(9)).join(' ')}   (MiB/min, after minute 1)`);
    for (const failure of summary.failures.slice(0, 10)) console.log(`  failure: ${failure}`);
    if (summary.failed || settled.open.length) process.exitCode = 1;
  } finally {
    for (const role of roles.values()) await role.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Least-squares slope of evenly spaced values (per step); 0 for fewer than two. */
export function slope(values: number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  const meanX = (n - 1) / 2;
  const meanY = values.reduce((sum, value) => sum + value, 0) / n;
  let numerator = 0;
  let denominator = 0;
  values.forEach((value, x) => {
    numerator += (x - meanX) * (value - meanY);
    denominator += (x - meanX) ** 2;
  });
  return numerator / denominator;
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`soak bench: ${(error as Error).message}`);
    process.exit(1);
  });
}
