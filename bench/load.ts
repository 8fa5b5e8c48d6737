/**
 * A burst of jobs against one gateway: N jobs (half uploads to `fileinfo`, half small JSON investigations
 * for `ioc-lookup`) sent as fast as C clients can send them, each client waiting for its answer before
 * sending the next. Every answer must be an acceptance (200/202 with an id) or a refusal the client can
 * act on (429 or 503 with Retry-After); any other status, a network error or a client timeout is a
 * failure. Every accepted job must then reach a terminal state. Printed: accepted/s, completed/s, p50/p99
 * accept latency, the refusals, and the gateway's resident memory before, at its peak and after.
 *
 * The jobs' inputs come from a small set (`--distinct`), so the engines' result cache answers most of
 * them: this measures the gateway and the Temporal path, not engine containers (bench:engines does).
 * The gateway runs alone in a child process (its memory is its own); the main worker and the engine
 * workers run in this process against a Temporal dev server of its own. Loopback only.
 *
 *   npm run bench:load [-- --jobs 1000 --clients 50 --distinct 20 --max-inflight <n>]
 *
 * Needs the Temporal CLI, Docker and the fileinfo and ioc-lookup images (npm run setup).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { percentile } from './lib';

const ROOT = resolve(__dirname, '..');
const MiB = 1024 * 1024;
/** A client gives up on one answer after this: the gateway must answer (or refuse) long before. */
export const CLIENT_TIMEOUT_MS = 30_000;
const POLL_LANES = 8;
const RSS_SAMPLE_MS = 100;

export type Outcome =
  | { kind: 'accepted'; job: JobKind; status: number; id: string; latencyMs: number }
  | { kind: 'refused'; job: JobKind; status: 429 | 503; retryAfter: string; latencyMs: number }
  | { kind: 'failed'; job: JobKind; status: number; why: string; latencyMs: number };

export type JobKind = 'upload' | 'json';

export interface BurstOptions {
  baseUrl: string;
  jobs: number;
  clients: number;
  /** How many different files and domains the jobs are drawn from. */
  distinct: number;
  /** Bearer key; none when the gateway admits anonymous analysts. */
  key?: string;
  /** A run label mixed into the inputs, so two runs against one cache do not share results. */
  seed?: string;
}

/** Sends the jobs from `clients` concurrent clients; resolves once every job has an answer or failed. */
export async function sendBurst(options: BurstOptions): Promise<Outcome[]> {
  const seed = options.seed ?? randomBytes(4).toString('hex');
  const outcomes: Outcome[] = [];
  let next = 0;
  const client = async () => {
    while (next < options.jobs) {
      const index = next++;
      outcomes.push(await sendJob(options, index, seed));
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  return outcomes;
}

async function sendJob(options: BurstOptions, index: number, seed: string): Promise<Outcome> {
  const variant = index % Math.max(1, options.distinct);
  const job: JobKind = index % 2 === 0 ? 'upload' : 'json';
  const headers: Record<string, string> = options.key ? { authorization: `Bearer ${options.key}` } : {};
  let url: string;
  let body: FormData | string;
  if (job === 'upload') {
    url = `${options.baseUrl}/fileinfo/upload`;
    body = new FormData();
    body.append('upload', new Blob([`load ${seed} sample ${variant}\n${'x'.repeat(512)}\n`]), `sample-${variant}.txt`);
  } else {
    url = `${options.baseUrl}/v1/investigations`;
    headers['content-type'] = 'application/json';
    body = JSON.stringify({ observables: [{ type: 'domain', data: `load-${seed}-${variant}.example.org` }], engines: ['ioc-lookup'] });
  }
  const started = performance.now();
  try {
    const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) });
    const text = await response.text();
    const latencyMs = performance.now() - started;
    const status = response.status;
    if (status === 200 || status === 202) {
      const answer = parseJson(text) as { id?: string; jobid?: string } | undefined;
      const id = answer?.id ?? answer?.jobid;
      return id ? { kind: 'accepted', job, status, id, latencyMs } : { kind: 'failed', job, status, why: `accepted without an id: ${text.slice(0, 200)}`, latencyMs };
    }
    if (status === 429 || status === 503) {
      const retryAfter = response.headers.get('retry-after');
      return retryAfter
        ? { kind: 'refused', job, status, retryAfter, latencyMs }
        : { kind: 'failed', job, status, why: `refused without Retry-After: ${text.slice(0, 200)}`, latencyMs };
    }
    return { kind: 'failed', job, status, why: text.slice(0, 300), latencyMs };
  } catch (error) {
    return { kind: 'failed', job, status: 0, why: (error as Error).name === 'TimeoutError' ? `no answer within ${CLIENT_TIMEOUT_MS / 1000} s` : (error as Error).message, latencyMs: performance.now() - started };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface Settled {
  /** Terminal state of each job that reached one (`completed` or `failed`). */
  terminal: Map<string, string>;
  /** Jobs still running when the time ran out. */
  open: string[];
  /** When the last job was first seen terminal (performance.now()). */
  lastAt: number;
}

/** Polls `GET /v1/investigations/<id>` until every job is terminal or `limitMs` has passed. */
export async function awaitTerminal(baseUrl: string, ids: string[], limitMs: number, key?: string): Promise<Settled> {
  const deadline = Date.now() + limitMs;
  const terminal = new Map<string, string>();
  let lastAt = performance.now();
  let open = [...ids];
  while (open.length && Date.now() < deadline) {
    let next = 0;
    const round = [...open];
    const lane = async () => {
      while (next < round.length) {
        const id = round[next++];
        const state = await stateOf(baseUrl, id, key);
        if (state === 'completed' || state === 'failed') {
          terminal.set(id, state);
          lastAt = performance.now();
        }
      }
    };
    await Promise.all(Array.from({ length: POLL_LANES }, lane));
    open = open.filter((id) => !terminal.has(id));
    if (open.length) await sleep(500);
  }
  return { terminal, open, lastAt };
}

async function stateOf(baseUrl: string, id: string, key?: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${baseUrl}/v1/investigations/${id}`, {
      headers: key ? { authorization: `Bearer ${key}` } : {}, signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const body = parseJson(await response.text()) as { state?: string } | undefined;
    return response.ok ? body?.state : undefined;
  } catch {
    return undefined;
  }
}

export interface Summary {
  accepted: number;
  refused429: number;
  refused503: number;
  failed: number;
  failures: string[];
  p50: number;
  p99: number;
}

export function summarize(outcomes: Outcome[]): Summary {
  const latencies = outcomes.filter((o) => o.kind === 'accepted').map((o) => o.latencyMs).sort((a, b) => a - b);
  const failures = outcomes.filter((o): o is Extract<Outcome, { kind: 'failed' }> => o.kind === 'failed').map((o) => `${o.job} ${o.status}: ${o.why}`);
  return {
    accepted: latencies.length,
    refused429: outcomes.filter((o) => o.kind === 'refused' && o.status === 429).length,
    refused503: outcomes.filter((o) => o.kind === 'refused' && o.status === 503).length,
    failed: failures.length,
    failures,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

/** VmRSS of a process, in bytes (Linux). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
}

/** Samples a process's resident memory until stopped; answers the peak. */
export function sampleRss(pid: number): { stop(): number } {
  let peak = residentBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, residentBytes(pid));
    } catch {
      // the process is gone; the caller notices on its own
    }
  }, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

export interface Role {
  process: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/**
 * One Docket role (`scripts/run.ts <role>`) as a child process, run by node itself so the child's pid is
 * the role's; answered once its `/healthz` (at `healthUrl`) does. Its output goes to `logFile`.
 */
export async function startRole(role: 'gateway' | 'worker' | 'engines', env: Record<string, string>, healthUrl: string, logFile: string): Promise<Role> {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/run.ts'), role], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', log, log],
  });
  closeSync(log);
  const deadline = Date.now() + 90_000;
  const failed = (why: string) => new Error(`the ${role} role ${why}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
  for (;;) {
    if (child.exitCode !== null) throw failed(`exited with ${child.exitCode}`);
    const response = await fetch(`${healthUrl}/healthz`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
    await response?.arrayBuffer();
    if (response?.ok) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw failed('did not answer /healthz within 90 s');
    }
    await sleep(250);
  }
  return { process: child, url: healthUrl, stop: () => stopChild(child) };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(force);
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
export const mib = (bytes: number) => (bytes / MiB).toFixed(1);

// ---------------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      jobs: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '50' },
      distinct: { type: 'string', default: '20' },
      'max-inflight': { type: 'string' },
      'settle-minutes': { type: 'string', default: '15' },
    },
  });
  const jobs = positive(values.jobs, 'jobs');
  const clients = positive(values.clients, 'clients');
  const distinct = positive(values.distinct, 'distinct');
  const settleMs = positive(values['settle-minutes'], 'settle-minutes') * 60_000;
  // Loaded here, not at the top, so the burst test can import the driver above without the system.
  const { loadConfig } = await import('../core/config');
  const { createLogger } = await import('../infra/log');
  const { startSystem } = await import('../system/start-system');
  const { freePort, startDevServer } = await import('../system/temporal-dev');

  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-load-'));
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const gatewayPort = await freePort();
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal.address,
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_QUEUE_PREFIX: `load${randomBytes(3).toString('hex')}-`,
    DOCKET_HOST: '127.0.0.1',
    DOCKET_ANONYMOUS: 'analyze',
    // One address sends every job: the per-minute limit would refuse most of them, and its 429s are
    // the roles test's subject. Admission control (DOCKET_MAX_INFLIGHT_STARTS) stays on.
    DOCKET_RATE_LIMIT: '0',
    DOCKET_LOG_LEVEL: 'warn',
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
    DOCKET_PORT: String(gatewayPort),
    ...(values['max-inflight'] ? { DOCKET_MAX_INFLIGHT_STARTS: values['max-inflight'] } : {}),
  };
  mkdirSync(env.DOCKET_SCHEDULES_DIR);
  let gateway: Role | undefined;
  let workers: Awaited<ReturnType<typeof startSystem>> | undefined;
  process.once('exit', () => {
    for (const child of [gateway?.process, temporal.process]) if (child && child.exitCode === null) child.kill('SIGKILL');
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    gateway = await startRole('gateway', env, `http://127.0.0.1:${gatewayPort}`, join(dir, 'gateway.log'));
    workers = await startSystem({ config: loadConfig({ ...env, DOCKET_PORT: '0' }), log: createLogger('warn'), gateway: false });
    // One warm-up job of each kind, so neither the gateway nor the engines pay first-use costs in the figures.
    const warm = await sendBurst({ baseUrl: gateway.url, jobs: 2, clients: 1, distinct: 1, seed: 'warm' });
    await awaitTerminal(gateway.url, warm.flatMap((o) => (o.kind === 'accepted' ? [o.id] : [])), 120_000);
    await sleep(1_000);

    const pid = gateway.process.pid!;
    const before = residentBytes(pid);
    const sampler = sampleRss(pid);
    const started = performance.now();
    const outcomes = await sendBurst({ baseUrl: gateway.url, jobs, clients, distinct });
    const sentMs = performance.now() - started;
    const ids = outcomes.flatMap((o) => (o.kind === 'accepted' ? [o.id] : []));
    const settled = await awaitTerminal(gateway.url, ids, settleMs);
    const peak = sampler.stop();
    await sleep(2_000);
    const after = residentBytes(pid);
    const summary = summarize(outcomes);
    const failedJobs = [...settled.terminal.values()].filter((state) => state === 'failed').length;

    console.log(`load bench: ${jobs} jobs (uploads to fileinfo and JSON investigations for ioc-lookup, ${distinct} distinct inputs of each) from ${clients} clients; admission limit ${env.DOCKET_MAX_INFLIGHT_STARTS ?? 'default'}`);
    console.log(`  answers: ${summary.accepted} accepted, ${summary.refused429} refused 429, ${summary.refused503} refused 503 (with Retry-After), ${summary.failed} failed`);
    console.log(`  accepted/s ${(summary.accepted / (sentMs / 1000)).toFixed(1)} over ${(sentMs / 1000).toFixed(1)} s; accept latency p50 ${summary.p50.toFixed(0)} ms, p99 ${summary.p99.toFixed(0)} ms`);
    console.log(`  terminal: ${settled.terminal.size} of ${ids.length} (${failedJobs} failed), ${settled.open.length} still open; completed/s ${(settled.terminal.size / ((settled.lastAt - started) / 1000)).toFixed(1)} (first send to last terminal)`);
    console.log(`  gateway RSS: ${mib(before)} MiB before, ${mib(peak)} MiB peak, ${mib(after)} MiB after (growth ${mib(after - before)} MiB)`);
    for (const failure of summary.failures.slice(0, 10)) console.log(`  failure: ${failure}`);
    if (summary.failed || settled.open.length) process.exitCode = 1;
  } finally {
    await gateway?.stop();
    await workers?.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function positive(value: string | undefined, name: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`--${name} takes a positive whole number (got ${JSON.stringify(value)})`);
  return number;
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`load bench: ${(error as Error).message}`);
    process.exit(1);
  });
}
