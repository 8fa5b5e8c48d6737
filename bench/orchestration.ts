/**
 * Orchestration throughput: investigations of text whose only observable is a CVE (no engine applies,
 * so no container runs), 300 started at once, until all have closed; in interleaved rounds with a
 * trivial workflow of 3 activities (bench/trivial-workflow.ts) on the same Temporal server, with its
 * own worker and task queue. Medians of the rounds. The server is the embedded dev server as
 * `npm start` runs it (a SQLite file, Docket's pragmas), and it keeps every earlier round's history,
 * so later rounds run on a server holding more.
 *
 *   npm run bench:orchestration [-- --count 300] [-- --rounds 2] [-- --sqlite default]
 *
 * `--sqlite default` runs the dev server with SQLite's own pragmas (a rollback journal, synchronous=full).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../core/config';
import { InvestigationInput } from '../core/investigation';
import { createLogger } from '../infra/log';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { median, reportFigures, sleep } from './lib';
import type { TrivialActivities } from './trivial-workflow';

const ROOT = resolve(__dirname, '..');
const TRIVIAL_QUEUE = 'bench-trivial';
const CLOSE_DEADLINE_MS = 10 * 60_000;
const COUNT_EVERY_MS = 100;
const TEXT = 'advisory: the appliance is vulnerable to CVE-2021-44228, patch it';

interface Options {
  count: number;
  rounds: number;
  sqlite: 'docket' | 'default';
}

function options(argv: string[]): Options {
  const value = (name: string) => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const count = Number(value('count') ?? 300);
  const rounds = Number(value('rounds') ?? 2);
  if (!Number.isInteger(count) || count < 1 || count > 5000) throw new Error('--count takes a whole number from 1 to 5000');
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds takes a whole number from 1 to 20');
  const sqlite = value('sqlite') ?? 'docket';
  if (sqlite !== 'docket' && sqlite !== 'default') throw new Error('--sqlite is docket (WAL, as npm start runs it) or default (SQLite\'s own pragmas)');
  return { count, rounds, sqlite };
}

const trivialActivities: TrivialActivities = {
  first: async (input) => input,
  second: async (input) => input,
  third: async (input) => input,
};

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-orchestration-'));
  const temporal = await startDevServer({
    port: await freePort(), logFile: join(dir, 'temporal.log'), dbFile: join(dir, 'temporal.db'),
    ...(opts.sqlite === 'default' ? { sqlitePragmas: {} } : {}),
  });
  mkdirSync(join(dir, 'schedules'));
  const config = loadConfig({
    TEMPORAL_ADDRESS: temporal.address, DOCKET_DATA_DIR: join(dir, 'data'), DOCKET_ENGINES_DIR: join(ROOT, 'engines'),
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
  });
  // No engine applies to a CVE, so the engine workers would only wait; the main worker runs everything.
  const system = await startSystem({ config, log: createLogger('warn'), gateway: false, engineWorkers: false });
  const connection = await NativeConnection.connect({ address: temporal.address });
  const worker = await Worker.create({
    connection, taskQueue: TRIVIAL_QUEUE, workflowsPath: require.resolve('./trivial-workflow'), activities: trivialActivities,
  });
  const running = worker.run();
  try {
    // Warm-up, not counted: both workers' first workflow tasks pay for loading the workflow code.
    await round('investigation', system, 10);
    await round('benchTrivial', system, 10);
    const docket: number[] = [];
    const trivial: number[] = [];
    for (let index = 0; index < opts.rounds; index += 1) {
      docket.push(await round('investigation', system, opts.count));
      trivial.push(await round('benchTrivial', system, opts.count));
      process.stdout.write(`  round ${index + 1}: investigations ${docket[index].toFixed(1)}/s, trivial ${trivial[index].toFixed(1)}/s\n`);
    }
    const ours = median(docket);
    const theirs = median(trivial);
    process.stdout.write([
      `orchestration bench: ${opts.count} workflows started at once until all closed, ${opts.rounds} interleaved round(s); `
        + `dev server SQLite pragmas: ${opts.sqlite === 'docket' ? 'journal_mode=wal, synchronous=normal' : "SQLite's defaults"}`,
      `  investigations (one CVE, no engine applies)  ${ours.toFixed(1)}/s (median; rounds ${docket.map((rate) => rate.toFixed(1)).join(', ')})`,
      `  trivial workflow, 3 activities               ${theirs.toFixed(1)}/s (median; rounds ${trivial.map((rate) => rate.toFixed(1)).join(', ')})`,
      `  ratio                                        ${(ours / theirs).toFixed(2)}`,
      '',
    ].join('\n'));
    reportFigures('orchestration', [{
      figure: `investigations of one CVE (no engine applies), ${opts.count} at once until all closed, embedded server, medians of ${opts.rounds} interleaved rounds`,
      docket: `${ours.toFixed(1)}/s`,
      baseline: `trivial 3-activity workflow, own worker: ${theirs.toFixed(1)}/s`,
      ratio: ours / theirs,
      goal: '≥ 1.0 and ≥ 10/s',
    }]);
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await system.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts `count` workflows of `type` at once and resolves to how many closed per second, from the first start to the last close. */
async function round(type: 'investigation' | 'benchTrivial', system: Awaited<ReturnType<typeof startSystem>>, count: number): Promise<number> {
  const batch = randomBytes(3).toString('hex');
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, (_, index) => {
    const id = `bench-${type}-${batch}-${index}`;
    if (type === 'investigation') return system.temporal.startInvestigation(InvestigationInput.parse({ text: TEXT, source: 'http' }), id);
    return system.client.workflow.start('benchTrivial', { taskQueue: TRIVIAL_QUEUE, workflowId: id, args: [id] });
  }));
  await untilClosed(system.client, `bench-${type}-${batch}-`, count);
  const seconds = (performance.now() - started) / 1000;
  await failedNone(system.client, type, batch);
  return count / seconds;
}

/** Waits until visibility lists all `count` workflows whose ids start with `prefix` as closed. */
async function untilClosed(client: Client, prefix: string, count: number): Promise<void> {
  const deadline = Date.now() + CLOSE_DEADLINE_MS;
  for (;;) {
    const response = await client.workflowService.countWorkflowExecutions({
      namespace: client.options.namespace, query: `WorkflowId STARTS_WITH '${prefix}' AND ExecutionStatus != 'Running'`,
    });
    const closed = Number(response.count ?? 0);
    if (closed >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${closed} of ${count} workflows ${prefix}* closed within ${CLOSE_DEADLINE_MS / 60_000} minutes`);
    await sleep(COUNT_EVERY_MS);
  }
}

/** A round whose workflows failed measured failures, not throughput: say so and stop. */
async function failedNone(client: Client, type: string, batch: string): Promise<void> {
  const { count } = await client.workflowService.countWorkflowExecutions({
    namespace: client.options.namespace,
    query: `WorkflowType = '${type}' AND ExecutionStatus != 'Completed' AND WorkflowId STARTS_WITH 'bench-${type}-${batch}-'`,
  });
  if (Number(count ?? 0) > 0) throw new Error(`${count} ${type} workflows of round ${batch} did not complete; see the Temporal log`);
}

main().catch((error) => {
  const cause = (error as { cause?: Error }).cause;
  console.error(`orchestration bench: ${(error as Error).stack ?? error}${cause ? `\ncaused by: ${cause.message}` : ''}`);
  process.exit(1);
});
