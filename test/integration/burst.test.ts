import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awaitTerminal, type Role, residentBytes, sampleRss, sendBurst, startRole, summarize } from '../../bench/load';
import { freePort } from '../../system/temporal-dev';
import { ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * A CI-sized burst (bench/load.ts at 100 jobs from 10 clients) against a gateway running alone in a child
 * process, so its memory is its own, with the main worker and the engine workers in this process. The
 * admission limit is set low on purpose, so the burst overruns it. No assertion reads a clock.
 */

const JOBS = 100;
const CLIENTS = 10;
/** Low enough that 10 clients overrun it, so the refusals' shape is checked too. */
const MAX_INFLIGHT = 3;
/** The gateway's resident memory may grow by this much over the burst and stay there (no leak per job). */
const RSS_GROWTH_LIMIT = 96 * 1024 * 1024;
const SETTLE_MS = 200_000;

describe('a burst of uploads and JSON investigations at one gateway', () => {
  const work = mkdtempSync(join(tmpdir(), 'docket-burst-'));
  let workers: TestSystem;
  let gateway: Role;

  beforeAll(async () => {
    mkdirSync(join(work, 'schedules'));
    workers = await startTestSystem({ gateway: false, env: { DOCKET_SCHEDULES_DIR: join(work, 'schedules') } });
    const port = await freePort();
    gateway = await startRole('gateway', {
      TEMPORAL_ADDRESS: workers.config.temporalAddress,
      DOCKET_DATA_DIR: workers.dataDir,
      DOCKET_ENGINES_DIR: join(ROOT, 'engines'),
      DOCKET_QUEUE_PREFIX: workers.config.DOCKET_QUEUE_PREFIX,
      DOCKET_SCHEDULES_DIR: join(work, 'schedules'),
      DOCKET_HOST: '127.0.0.1',
      DOCKET_PORT: String(port),
      DOCKET_ANONYMOUS: 'analyze',
      // Every job comes from one address: the per-minute limit is the roles test's subject, admission is this one's.
      DOCKET_RATE_LIMIT: '0',
      DOCKET_MAX_INFLIGHT_STARTS: String(MAX_INFLIGHT),
      DOCKET_LOG_LEVEL: 'warn',
    }, `http://127.0.0.1:${port}`, join(work, 'gateway.log'));
  });

  afterAll(async () => {
    await gateway?.stop();
    await workers?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses a state-changing request past the in-flight limit with 503 and Retry-After, before reading its body, and still answers reads', async () => {
    const held = Array.from({ length: MAX_INFLIGHT }, () => holdUpload(gateway.url));
    try {
      // A request the gateway admits answers 400 at once (no body) and gives its place back; once the held
      // uploads have all been admitted, the same request is refused instead.
      expect(await firstStatus(() => post(gateway.url, '/v1/investigations', 'not json'), [503])).toBe(503);
      const refused = await post(gateway.url, '/v1/investigations', JSON.stringify({ text: 'refused.example.org' }));
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { error: unknown }).error).toMatchObject({ code: 'overloaded', message: expect.stringContaining('DOCKET_MAX_INFLIGHT_STARTS') });
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    } finally {
      for (const upload of held) upload.abort();
    }
    // The aborted uploads give their places back.
    const body = JSON.stringify({ observables: [{ type: 'domain', data: 'admitted.example.org' }], engines: ['ioc-lookup'] });
    expect(await firstStatus(() => post(gateway.url, '/v1/investigations', body), [202])).toBe(202);
  });

  it(`answers each of ${JOBS} jobs from ${CLIENTS} clients with an id or 429/503 and Retry-After, finishes every accepted one, and keeps its memory bounded`, async () => {
    const pid = gateway.process.pid!;
    const before = residentBytes(pid);
    const sampler = sampleRss(pid);
    const outcomes = await sendBurst({ baseUrl: gateway.url, jobs: JOBS, clients: CLIENTS, distinct: 5 });
    const summary = summarize(outcomes);
    expect(summary.failures).toEqual([]);
    expect(outcomes).toHaveLength(JOBS);
    expect(summary.accepted + summary.refused429 + summary.refused503).toBe(JOBS);
    expect(summary.accepted).toBeGreaterThan(0);

    const ids = outcomes.flatMap((o) => (o.kind === 'accepted' ? [o.id] : []));
    const settled = await awaitTerminal(gateway.url, ids, SETTLE_MS);
    const peak = sampler.stop();
    expect(settled.open).toEqual([]);
    expect([...settled.terminal.values()].filter((state) => state !== 'completed')).toEqual([]);
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(residentBytes(pid) - before).toBeLessThan(RSS_GROWTH_LIMIT);
  });
});

/** An upload whose body never ends, holding one in-flight place until aborted. */
function holdUpload(base: string): { abort(): void } {
  const url = new URL('/fileinfo/upload', base);
  const boundary = 'docket-burst-held';
  const outgoing = request({
    host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false,
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
  });
  outgoing.on('error', () => undefined);
  outgoing.write(`--${boundary}\r\nContent-Disposition: form-data; name="upload"; filename="held.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  return { abort: () => outgoing.destroy() };
}

function post(base: string, path: string, body: string): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) });
}

/** Sends the request until it answers one of `wanted` (bounded in count); answers the last status. */
async function firstStatus(send: () => Promise<Response>, wanted: number[]): Promise<number> {
  let status = 0;
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const response = await send();
    await response.arrayBuffer();
    status = response.status;
    if (wanted.includes(status)) return status;
    await new Promise((done) => setTimeout(done, 50));
  }
  return status;
}
