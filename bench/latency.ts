/**
 * Where the time of one job goes. One 100 kB upload to fileinfo until `GET /result/<id>` says
 * Success, median of 15, interleaved with the same engine run bare, in the same run:
 * `docker run --rm --network none -v <vol>:/job docket/fileinfo:1.0 /job` on a volume holding the
 * same job folder. Then the time per step of the Docket runs (medians):
 *
 * - the gateway's upload and durable start (the POST, as the client sees it);
 * - every gap between two events of the workflow's history (each workflow task and activity round
 *   trip, from the events' own timestamps);
 * - every Docker API call of the engine job (DockerRunner's timing hook; calls that do not need each
 *   other go at once, so their sum exceeds the job's wall time, printed beside it; the removals come
 *   after the job's result, and a job that took a warm job folder has no volume or holder steps; the
 *   bench waits for the removals and the folder's replacement before its next run, bare or not);
 * - the `/result` read: from the close event until the client holds the answer.
 *
 * Last, reads of a running job (`GET /result/<id>` and `GET /v1/investigations/<id>`, autocannon)
 * beside `GET /healthz`: what each status read costs while the console or a client polls.
 *
 * Docket runs in this process (gateway, main worker, engine worker) on a dev server with a SQLite
 * file, as `npm start` runs it. Loopback only.
 *
 *   npm run bench:latency [-- --runs 15] [-- --sqlite default] [-- --read poll]
 *
 * `--sqlite default` runs the dev server with SQLite's own pragmas instead of Docket's (WAL);
 * `--read poll` reads /result every 100 ms instead of the long poll (`?wait=30s`).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../core/config';
import { createLogger } from '../infra/log';
import { DockerRunner, type DockerStep } from '../activities/runners/docker';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { enginesFolder } from '../test/helpers/fixtures';
import { exec, median, reportFigures, sleep } from './lib';

const ROOT = resolve(__dirname, '..');
const IMAGE = 'docket/fileinfo:1.0';
const SIZE = 100 * 1024;
const POLL_MS = 100;
const RESULT_DEADLINE_MS = 120_000;
const READ_SECONDS = 5;
const READ_CONNECTIONS = 10;

/** Temporal's EventType numbers of the events these histories hold (the enum lives in a package Docket does not depend on). */
const EVENT_NAMES: Record<number, string> = {
  1: 'workflow started', 2: 'workflow completed', 3: 'workflow failed', 5: 'workflow task scheduled', 6: 'workflow task started',
  7: 'workflow task completed', 8: 'workflow task timed out', 9: 'workflow task failed', 10: 'activity scheduled',
  11: 'activity started', 12: 'activity completed', 13: 'activity failed', 14: 'activity timed out', 40: 'search attributes upserted',
  25: 'marker recorded (local activity or patch)', 46: 'memo modified',
};

interface Options {
  runs: number;
  sqlite: 'docket' | 'default';
  read: 'wait' | 'poll';
}

interface DocketRun {
  total: number;
  upload: number;
  /** From the close event to the client holding the Success. */
  read: number;
  /** Each history event (labelled) with the ms since the one before it. */
  gaps: Array<{ label: string; ms: number }>;
  docker: Map<DockerStep, number>;
}

function options(argv: string[]): Options {
  const value = (name: string) => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const runs = Number(value('runs') ?? 15);
  if (!Number.isInteger(runs) || runs < 1 || runs > 200) throw new Error('--runs takes a whole number from 1 to 200');
  const sqlite = value('sqlite') ?? 'docket';
  if (sqlite !== 'docket' && sqlite !== 'default') throw new Error('--sqlite is docket (WAL, as npm start runs it) or default (SQLite\'s own pragmas)');
  const read = value('read') ?? 'wait';
  if (read !== 'wait' && read !== 'poll') throw new Error('--read is wait (GET /result/<id>?wait=30s) or poll (every 100 ms)');
  return { runs, sqlite, read };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-latency-'));
  const temporal = await startDevServer({
    port: await freePort(), logFile: join(dir, 'temporal.log'), dbFile: join(dir, 'temporal.db'),
    ...(opts.sqlite === 'default' ? { sqlitePragmas: {} } : {}),
  });
  const fileinfo = { ...parseYaml(readFileSync(join(ROOT, 'engines/fileinfo/engine.yaml'), 'utf8')), cache: 0 };
  // The running-job reads need a job that stays running: a stdout engine that sleeps.
  const sleeper = {
    name: 'sleeper', kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['file'], protocol: 'stdout',
    command: ['/bin/sh', '-c', 'sleep 60'], timeout: '120s', cache: 0,
  };
  const engines = enginesFolder([fileinfo, sleeper]);
  mkdirSync(join(dir, 'schedules'));
  const config = loadConfig({
    TEMPORAL_ADDRESS: temporal.address, DOCKET_DATA_DIR: join(dir, 'data'), DOCKET_ENGINES_DIR: engines,
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'), DOCKET_PORT: '0', DOCKET_HOST: '127.0.0.1',
    DOCKET_ANONYMOUS: 'analyze', DOCKET_RATE_LIMIT: '0',
  });
  // Audit lines would bury the figures.
  const system = await startSystem({ config, log: createLogger('warn'), gateway: true, audit: () => undefined });
  const url = system.url!.replace('localhost', '127.0.0.1');
  const docker = system.runners.find('docker');
  if (!(docker instanceof DockerRunner)) throw new Error('this process has no Docker runner');
  const steps = new Map<string, Map<DockerStep, number>>();
  docker.timing = (step, ms, job) => {
    const byStep = steps.get(job) ?? new Map<DockerStep, number>();
    byStep.set(step, (byStep.get(step) ?? 0) + ms);
    steps.set(job, byStep);
  };
  const volume = `docket-bench-latency-${randomBytes(4).toString('hex')}`;
  try {
    const sample = randomBytes(SIZE);
    await prepareVolume(volume, sample, dir);
    // Warm-up, not counted: each side's first run pays for cold caches (image layers, compiled code paths).
    await bare(volume);
    await throughDocket(url, system, steps, opts, randomBytes(SIZE));
    // A job's removals and its warm folder's replacement run after it answered: done before the next run, so they
    // slow neither side (the first Docket run made the job folders of its shape warm).
    await docker.settled();

    const bareRuns: number[] = [];
    const docketRuns: DocketRun[] = [];
    for (let index = 0; index < opts.runs; index += 1) {
      bareRuns.push(await bare(volume));
      docketRuns.push(await throughDocket(url, system, steps, opts, randomBytes(SIZE)));
      await docker.settled();
    }
    const running = await runningReads(url, system);
    print(opts, bareRuns, docketRuns, running);
  } finally {
    await system.stop();
    await temporal.stop();
    await exec('docker', ['volume', 'rm', '-f', volume]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    rmSync(engines, { recursive: true, force: true });
  }
}

/** A volume holding the job folder the cortex protocol lays out, so the bare run does what the engine does in Docket. */
async function prepareVolume(volume: string, sample: Buffer, dir: string): Promise<void> {
  const folder = join(dir, 'job');
  mkdirSync(join(folder, 'input'), { recursive: true });
  mkdirSync(join(folder, 'output'), { recursive: true });
  writeFileSync(join(folder, 'input', 'attachment'), sample);
  writeFileSync(join(folder, 'input', 'input.json'), JSON.stringify({
    dataType: 'file', tlp: 2, pap: 2, message: '', parameters: {}, config: {},
    file: 'attachment', filename: 'sample.bin', contentType: 'application/octet-stream',
  }));
  await exec('docker', ['volume', 'create', volume]);
  const holder = (await exec('docker', ['create', '-v', `${volume}:/job`, 'docket/base:bookworm', 'true'])).trim();
  try {
    await exec('docker', ['cp', `${folder}/.`, `${holder}:/job`]);
  } finally {
    await exec('docker', ['rm', '-f', holder]);
  }
}

async function bare(volume: string): Promise<number> {
  const started = performance.now();
  await exec('docker', ['run', '--rm', '--network', 'none', '-v', `${volume}:/job`, IMAGE, '/job']);
  return performance.now() - started;
}

async function throughDocket(
  url: string,
  system: Awaited<ReturnType<typeof startSystem>>,
  steps: Map<string, Map<DockerStep, number>>,
  opts: Options,
  sample: Buffer,
): Promise<DocketRun> {
  const started = performance.now();
  const form = new FormData();
  form.append('upload', new Blob([sample]), 'sample.bin');
  const answer = await fetch(`${url}/fileinfo/upload`, { method: 'POST', body: form });
  const body = await answer.json() as { jobid?: string };
  if (!answer.ok || !body.jobid) throw new Error(`the upload answered ${answer.status}: ${JSON.stringify(body)}`);
  const uploaded = performance.now();
  await readResult(url, body.jobid, opts.read);
  const finished = performance.now();
  const receivedAt = Date.now();

  const history = await system.client.workflow.getHandle(body.jobid).fetchHistory();
  const events = history.events ?? [];
  const gaps: DocketRun['gaps'] = [];
  let previous: number | undefined;
  for (const event of events) {
    const at = eventMs(event.eventTime);
    const type = EVENT_NAMES[Number(event.eventType)] ?? `event type ${event.eventType}`;
    const activity = event.activityTaskScheduledEventAttributes?.activityType?.name;
    gaps.push({ label: activity ? `${type} ${activity}` : type, ms: previous === undefined ? 0 : at - previous });
    previous = at;
  }
  const closedAt = previous ?? receivedAt;
  return {
    total: finished - started,
    upload: uploaded - started,
    read: Math.max(0, receivedAt - closedAt),
    gaps,
    docker: steps.get(body.jobid) ?? new Map(),
  };
}

async function readResult(url: string, id: string, mode: Options['read']): Promise<void> {
  const deadline = Date.now() + RESULT_DEADLINE_MS;
  for (;;) {
    const response = await fetch(`${url}/result/${id}${mode === 'wait' ? '?wait=30s' : ''}`);
    const text = await response.text();
    const status = (JSON.parse(text) as { status?: string }).status;
    if (status === 'Success') return;
    if (status === 'Fail' || !response.ok) throw new Error(`job ${id} did not succeed: ${text} (is ${IMAGE} built? npm run engines:build)`);
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish within ${RESULT_DEADLINE_MS / 1000} s: ${text}`);
    if (mode === 'poll') await sleep(POLL_MS);
  }
}

/** Requests a second for a running job's status reads, beside the gateway's floor. */
async function runningReads(url: string, system: Awaited<ReturnType<typeof startSystem>>): Promise<{ result: number; investigation: number; floor: number }> {
  const form = new FormData();
  form.append('upload', new Blob([randomBytes(1024)]), 'sleep.bin');
  const { jobid } = await (await fetch(`${url}/sleeper/upload`, { method: 'POST', body: form })).json() as { jobid: string };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = await (await fetch(`${url}/result/${jobid}`)).text();
    const { status } = JSON.parse(text) as { status: string };
    if (status === 'Running') break;
    if (status !== 'Received' || Date.now() > deadline) throw new Error(`job ${jobid} of the sleeper engine did not stay running: ${text}`);
    await sleep(POLL_MS);
  }
  const rps = async (path: string) => {
    // A second of warm-up, not counted: the first requests of a route pay for compiling its code path.
    await autocannon({ url: `${url}${path}`, duration: 1, connections: READ_CONNECTIONS });
    const result = await autocannon({ url: `${url}${path}`, duration: READ_SECONDS, connections: READ_CONNECTIONS });
    if (result.non2xx + result.errors) throw new Error(`${path} failed ${result.non2xx + result.errors} times under load`);
    return result.requests.average;
  };
  const figures = { result: await rps(`/result/${jobid}`), investigation: await rps(`/v1/investigations/${jobid}`), floor: await rps('/healthz') };
  await system.client.workflow.getHandle(jobid).cancel();
  return figures;
}

function eventMs(time: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return Number(time?.seconds ?? 0) * 1000 + Math.floor((time?.nanos ?? 0) / 1e6);
}

function print(opts: Options, bareRuns: number[], docketRuns: DocketRun[], running: { result: number; investigation: number; floor: number }): void {
  const ms = (value: number) => `${value.toFixed(0)} ms`;
  const total = median(docketRuns.map((run) => run.total));
  const baseline = median(bareRuns);
  const lines = [
    `latency bench: ${opts.runs} uploads of ${SIZE / 1024} kB to fileinfo until /result says Success (read: ${opts.read}), `
      + `interleaved with bare docker runs; dev server SQLite pragmas: ${opts.sqlite === 'docket' ? 'journal_mode=wal, synchronous=normal' : "SQLite's defaults"}`,
    `  through Docket      ${ms(total)} (median)`,
    `  bare docker run     ${ms(baseline)} (median)`,
    `  ratio               ${(total / baseline).toFixed(2)}`,
    '',
    '  step (medians)',
    `    upload + durable start (POST /fileinfo/upload)  ${ms(median(docketRuns.map((run) => run.upload)))}`,
  ];
  // Events line up across runs only when their histories have the same shape; runs of another shape are left out.
  const shape = (run: DocketRun) => run.gaps.map((gap) => gap.label).join(',');
  const common = docketRuns.filter((run) => shape(run) === shape(docketRuns[0]));
  lines.push(`    workflow history, gap before each event (${common.length} of ${docketRuns.length} runs share its shape):`);
  docketRuns[0].gaps.forEach((gap, index) => {
    lines.push(`      ${String(index + 1).padStart(2)} ${gap.label.padEnd(48)} ${ms(median(common.map((run) => run.gaps[index].ms))).padStart(7)}`);
  });
  const history = median(common.map((run) => run.gaps.reduce((sum, gap) => sum + gap.ms, 0)));
  lines.push(`      first to last event                                 ${ms(history).padStart(7)}`);
  lines.push('    Docker API calls of the engine job (some at once):');
  const calls = (run: DocketRun) => [...run.docker].filter(([step]) => step !== 'job');
  const stepNames = [...new Set(docketRuns.flatMap((run) => calls(run).map(([step]) => step)))];
  for (const step of stepNames) lines.push(`      ${step.padEnd(48)}    ${ms(median(docketRuns.map((run) => run.docker.get(step) ?? 0))).padStart(7)}`);
  const dockerTotal = median(docketRuns.map((run) => calls(run).reduce((sum, [, value]) => sum + value, 0)));
  lines.push(`      sum of the calls                                    ${ms(dockerTotal).padStart(7)}`);
  lines.push(`      the engine job, wall time (until its result)        ${ms(median(docketRuns.map((run) => run.docker.get('job') ?? 0))).padStart(7)}`);
  const pooled = docketRuns.filter((run) => run.docker.has('pool take') && !run.docker.has('holder create')).length;
  lines.push(`      runs that took a warm job folder                    ${String(pooled).padStart(7)} of ${docketRuns.length}`);
  lines.push(`    /result read (close event to the client holding Success)  ${ms(median(docketRuns.map((run) => run.read)))}`);
  lines.push('');
  lines.push(`  reads of a running job, ${READ_CONNECTIONS} connections, ${READ_SECONDS} s each: GET /result/<id> ${running.result.toFixed(0)} req/s, `
    + `GET /v1/investigations/<id> ${running.investigation.toFixed(0)} req/s, GET /healthz ${running.floor.toFixed(0)} req/s`);
  process.stdout.write(`${lines.join('\n')}\n`);
  reportFigures('latency', [
    {
      figure: `upload ${SIZE / 1024} kB → /result Success, fileinfo, median of ${opts.runs}`,
      docket: ms(total),
      baseline: `docker run --rm --network none -v <job>:/job ${IMAGE} /job: ${ms(baseline)}`,
      ratio: total / baseline,
      goal: '≤ 1.2',
    },
    {
      figure: 'GET /result/<id> of a running job',
      docket: `${running.result.toFixed(0)} req/s`,
      baseline: `GET /healthz: ${running.floor.toFixed(0)} req/s`,
      ratio: running.result / running.floor,
      goal: 'no workflow query per read',
    },
    {
      figure: 'GET /v1/investigations/<id> of a running job',
      docket: `${running.investigation.toFixed(0)} req/s`,
      baseline: `GET /healthz: ${running.floor.toFixed(0)} req/s`,
      ratio: running.investigation / running.floor,
      goal: 'no workflow query per read',
    },
  ]);
}

main().catch((error) => {
  const cause = (error as { cause?: Error }).cause;
  console.error(`latency bench: ${(error as Error).stack ?? error}${cause ? `\ncaused by: ${cause.message}` : ''}`);
  process.exit(1);
});
