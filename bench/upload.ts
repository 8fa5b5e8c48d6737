/**
 * The gateway's data path under load, each figure beside a baseline measured in the same run:
 *
 * 1. A 1 GiB upload (`POST /<engine>/upload`, multipart) to a gateway running alone in a child
 *    process: throughput, and how much the gateway's resident memory grows while it streams the body
 *    to the blob store (target < 64 MiB). Baseline: a minimal Node HTTP server, also a child process,
 *    piping the same request body into a file.
 * 2. `GET /result/<id>` of a finished job with autocannon for 10 s: requests per second. Baseline: a
 *    minimal Node HTTP server answering the same bytes.
 *
 * Everything listens on 127.0.0.1. The body is generated as a stream, never held in memory.
 * Needs the Temporal CLI, Docker and docket/base:bookworm (npm run setup).
 * Usage: npm run bench:upload [-- <MiB, default 1024>]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, Connection } from '@temporalio/client';
import autocannon from 'autocannon';
import { createLogger } from '../infra/log';
import { loadConfig } from '../core/config';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { enginesFolder } from '../test/helpers/fixtures';
import { reportFigures } from './lib';

const ROOT = resolve(__dirname, '..');
const MiB = 1024 * 1024;
const CHUNK = MiB;
const RSS_SAMPLE_MS = 20;
const RSS_TARGET_MiB = 64;
const AUTOCANNON_SECONDS = 10;
const AUTOCANNON_CONNECTIONS = 10;
const ENGINE = 'bulk';
// Menagerie's `stdout` protocol on the offline base image: the cheapest engine that finishes a job.
const MANIFEST = {
  name: ENGINE, kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['file'], protocol: 'stdout',
  command: ['/bin/echo', 'ok'], sizelimit: '2g', timeout: '60s', cache: 0,
};

/**
 * The baseline server, as a script for `node -e`: `sink <file>` writes each request body to the file;
 * `fixed <body>` answers every request with the body, as JSON.
 */
const BASELINE_SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const { pipeline } = require('node:stream/promises');
const [mode, arg] = process.argv.slice(1);
const server = http.createServer(async (req, res) => {
  if (mode === 'sink') {
    await pipeline(req, fs.createWriteStream(arg));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  } else {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(arg);
  }
});
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
`;

interface Child {
  process: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const size = Number(process.argv[2] ?? 1024) * MiB;
  if (!Number.isInteger(size) || size <= 0) throw new Error('give the upload size in MiB, for example: npm run bench:upload -- 256');
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-upload-'));
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const engines = enginesFolder([MANIFEST]);
  const env = {
    TEMPORAL_ADDRESS: temporal.address,
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_ENGINES_DIR: engines,
    DOCKET_QUEUE_PREFIX: `bench${randomBytes(3).toString('hex')}-`,
    DOCKET_HOST: '127.0.0.1',
    DOCKET_ANONYMOUS: 'analyze',
    // autocannon sends thousands of requests a second from one address; the limit would answer 429.
    DOCKET_RATE_LIMIT: '0',
    DOCKET_LOG_LEVEL: 'warn',
    // No schedules: the figures are about the gateway alone, not about work the schedules start.
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
  };
  mkdirSync(env.DOCKET_SCHEDULES_DIR);
  const children: Child[] = [];
  let workers: Awaited<ReturnType<typeof startSystem>> | undefined;
  // However the run ends (interrupted, or a crash that skips the finally below), it takes its servers
  // down with it rather than leaving them listening.
  process.once('exit', () => {
    for (const child of [...children.map((c) => c.process), temporal.process]) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    const gateway = await startGateway(env, join(dir, 'gateway.log'));
    children.push(gateway);
    const sink = await startBaseline(['sink', join(dir, 'baseline.bin')]);
    children.push(sink);

    // Each side gets one small warm-up request, so neither pays its first-request costs in the figures.
    await upload(sink.url, '/', MiB);
    const warmJob = JSON.parse((await upload(gateway.url, `/${ENGINE}/upload`, MiB)).body).jobid as string;

    const base = await measuredUpload(sink, '/', size);
    rmSync(join(dir, 'baseline.bin'), { force: true });
    const docket = await measuredUpload(gateway, `/${ENGINE}/upload`, size);
    const bigJob = JSON.parse(docket.body).jobid as string;

    // Only the uploads were to be measured: their jobs end before any worker could take them up, and
    // their files go (the blob store makes each sha256/<prefix> folder again as it stores a blob).
    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    for (const id of [warmJob, bigJob]) await client.workflow.getHandle(id).terminate('upload benchmark: only the upload was measured');
    await connection.close();
    rmSync(join(dir, 'data', 'blobs', 'sha256'), { recursive: true, force: true });
    workers = await startSystem({ config: loadConfig({ ...env, DOCKET_PORT: '0' }), log: createLogger('warn'), gateway: false });

    const small = JSON.parse((await upload(gateway.url, `/${ENGINE}/upload`, 4096)).body).jobid as string;
    const result = await waitForResult(gateway.url, small);
    const fixed = await startBaseline(['fixed', result]);
    children.push(fixed);
    const docketRps = await cannon(`${gateway.url}/result/${small}`);
    const baseRps = await cannon(fixed.url);

    const mib = size / MiB;
    console.log(`upload bench: ${mib} MiB multipart upload over loopback, then GET /result/<id> for ${AUTOCANNON_SECONDS} s with ${AUTOCANNON_CONNECTIONS} connections`);
    console.log(`  upload, baseline (node http server piping the body to a file): ${(mib / base.seconds).toFixed(0)} MiB/s, RSS growth ${fmt(base.growth)} MiB`);
    console.log(`  upload, through the gateway (multipart, sha256, blob store):   ${(mib / docket.seconds).toFixed(0)} MiB/s, RSS growth ${fmt(docket.growth)} MiB (peak high-water mark growth ${fmt(docket.hwmGrowth)} MiB)`);
    console.log(`  ratio gateway / baseline throughput = ${(base.seconds / docket.seconds).toFixed(2)}; gateway RSS growth ${fmt(docket.growth)} MiB ${docket.growth < RSS_TARGET_MiB ? '<' : '>='} ${RSS_TARGET_MiB} MiB target`);
    console.log(`  GET /result/<id>, baseline (node http server, same bytes): ${baseRps.rps.toFixed(0)} req/s, p99 ${baseRps.p99} ms`);
    console.log(`  GET /result/<id>, through the gateway (finished reports cached after the first read): ${docketRps.rps.toFixed(0)} req/s, p99 ${docketRps.p99} ms, ${docketRps.failed} failed`);
    console.log(`  ratio gateway / baseline = ${(docketRps.rps / baseRps.rps).toFixed(3)}`);
    reportFigures('upload', [
      {
        figure: `${mib} MiB multipart upload (throughput; gateway RSS growth ${fmt(docket.growth)} MiB, goal < ${RSS_TARGET_MiB} MiB)`,
        docket: `${(mib / docket.seconds).toFixed(0)} MiB/s`,
        baseline: `node http server piping to a file: ${(mib / base.seconds).toFixed(0)} MiB/s`,
        ratio: base.seconds / docket.seconds,
        goal: 'throughput, no goal; RSS < 64 MiB',
      },
      {
        figure: `GET /result/<id> of a finished job, ${AUTOCANNON_CONNECTIONS} connections, ${AUTOCANNON_SECONDS} s`,
        docket: `${docketRps.rps.toFixed(0)} req/s, p99 ${docketRps.p99} ms`,
        baseline: `node http server, same bytes: ${baseRps.rps.toFixed(0)} req/s`,
        ratio: docketRps.rps / baseRps.rps,
        goal: 'report only',
      },
    ]);
  } finally {
    for (const child of children) await child.stop();
    await workers?.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(engines, { recursive: true, force: true });
  }
}

/** The gateway alone (`scripts/run.ts gateway`), run by node itself so the child's pid is the gateway's. */
async function startGateway(env: Record<string, string>, logFile: string): Promise<Child> {
  const port = await freePort();
  // Its logs would interleave with the figures; they go to a file, quoted if the gateway fails to start.
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/run.ts'), 'gateway'], {
    cwd: ROOT,
    env: { ...process.env, ...env, DOCKET_PORT: String(port) },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  const failed = (why: string) => new Error(`the gateway ${why}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
  for (;;) {
    if (child.exitCode !== null) throw failed(`exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw failed('did not answer /healthz within 60 s');
    await sleep(200);
  }
  return { process: child, url, stop: () => stopChild(child) };
}

async function startBaseline(args: string[]): Promise<Child> {
  const child = spawn(process.execPath, ['-e', BASELINE_SERVER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((done, fail) => {
    child.stdout?.once('data', (chunk) => done(/port (\d+)/.exec(String(chunk))?.[1] ?? ''));
    child.once('exit', (code) => fail(new Error(`the baseline server exited with ${code}`)));
  });
  return { process: child, url: `http://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A multipart body of `size` bytes of file content, produced 1 MiB at a time as the socket drains. */
function multipartBody(size: number): { stream: Readable; length: number; type: string } {
  const boundary = `----docket-bench-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="upload"; filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const block = randomBytes(CHUNK);
  function* parts(): Generator<Buffer> {
    yield head;
    for (let sent = 0; sent < size; sent += CHUNK) yield sent + CHUNK <= size ? block : block.subarray(0, size - sent);
    yield tail;
  }
  return { stream: Readable.from(parts(), { objectMode: false }), length: head.length + size + tail.length, type: `multipart/form-data; boundary=${boundary}` };
}

async function upload(base: string, path: string, size: number): Promise<{ status: number; body: string }> {
  const body = multipartBody(size);
  const url = new URL(path, base);
  return new Promise((done, fail) => {
    const outgoing = request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false,
      headers: { 'content-type': body.type, 'content-length': String(body.length) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if ((response.statusCode ?? 0) >= 300) fail(new Error(`${url.pathname} answered ${response.statusCode}: ${text}`));
        else done({ status: response.statusCode ?? 0, body: text });
      });
      response.on('error', fail);
    });
    outgoing.on('error', fail);
    pipeline(body.stream, outgoing).catch(fail);
  });
}

/** One upload while the server's resident memory is sampled from /proc. */
async function measuredUpload(server: Child, path: string, size: number) {
  const pid = server.process.pid!;
  await sleep(500);
  const before = memory(pid);
  let peak = before.rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, memory(pid).rss);
  }, RSS_SAMPLE_MS);
  const started = performance.now();
  try {
    const answer = await upload(server.url, path, size);
    const seconds = (performance.now() - started) / 1000;
    const after = memory(pid);
    peak = Math.max(peak, after.rss);
    return { seconds, growth: (peak - before.rss) / MiB, hwmGrowth: (after.hwm - before.hwm) / MiB, body: answer.body };
  } finally {
    clearInterval(sampler);
  }
}

/** VmRSS and VmHWM (its high-water mark) of a process, in bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

async function waitForResult(base: string, id: string): Promise<string> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const response = await fetch(`${base}/result/${id}`);
    const text = await response.text();
    const status = (JSON.parse(text) as { status?: string }).status;
    if (status === 'Success') return text;
    if (status === 'Fail') throw new Error(`the small job failed: ${text} (is docket/base:bookworm built? npm run setup)`);
    if (Date.now() > deadline) throw new Error(`the small job did not finish within 120 s: ${text}`);
    await sleep(200);
  }
}

async function cannon(url: string): Promise<{ rps: number; p99: number; failed: number }> {
  const result = await autocannon({ url, duration: AUTOCANNON_SECONDS, connections: AUTOCANNON_CONNECTIONS });
  return { rps: result.requests.average, p99: result.latency.p99, failed: result.non2xx + result.errors + result.timeouts };
}

const fmt = (value: number) => value.toFixed(1);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

main().catch((error) => {
  console.error(`upload bench: ${(error as Error).message}`);
  process.exit(1);
});
