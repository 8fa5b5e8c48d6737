/**
 * `npm run test:stack`: the compose deployment, end to end, on this machine's Docker.
 *
 * Builds the images (npm run stack:build), brings docker-compose.yml up under a compose project of its
 * own with ports of its own (so a developer's `npm start` or stack is never touched), creates an API
 * key, uploads a file through Menagerie's `POST /fileinfo/upload`, waits for Success, takes the stack
 * down without its volumes and up again, reads the same job (`/result` Success, `/link` the same bytes:
 * the history in PostgreSQL and the blobs in S3 survived), and tears everything down with its volumes,
 * on failure too. Images are kept, so the next run builds warm. Exits non-zero on any failure.
 * Arguments are passed to stack:build: `npm run test:stack -- --build-network host`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { findCompose, type ComposeCommand } from './lib/compose';

const ROOT = resolve(__dirname, '..');
const PROJECT = `docket-stack-test-${randomBytes(3).toString('hex')}`;
const ENGINE = 'fileinfo';
/** Bounds for every wait below; a healthy stack is ready in well under these. */
const READY_LIMIT_MS = 8 * 60_000;
const JOB_LIMIT_MS = 5 * 60_000;
/** postgres, temporal, s3, gateway, worker, engines and the Web UI. */
const SERVICES = 7;

interface Outcome { code: number; output: string }

function exec(program: string, args: string[], options: { env?: NodeJS.ProcessEnv; show?: boolean } = {}): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      if (options.show) process.stdout.write(chunk);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, output }));
  });
}

async function mustExec(what: string, program: string, args: string[], options: { env?: NodeJS.ProcessEnv; show?: boolean } = {}): Promise<string> {
  const outcome = await exec(program, args, options);
  if (outcome.code === 0) return outcome.output;
  // Output already shown is not repeated.
  throw new Error(`${what} failed (exit ${outcome.code})${options.show ? '' : `:\n${outcome.output.trim().split('\n').slice(-30).join('\n')}`}`);
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolvePromise) => setTimeout(resolvePromise, ms));

/** Set by SIGINT/SIGTERM: the waits stop at their next round and the stack is torn down. */
let interrupted = false;
function checkInterrupted(): void {
  if (interrupted) throw new Error('interrupted');
}

class Stack {
  private readonly steps: string[] = [];
  private readonly started = Date.now();

  constructor(private readonly compose: ComposeCommand, private readonly env: NodeJS.ProcessEnv, readonly gateway: string) {}

  run(args: string[], show = false): Promise<string> {
    return mustExec(`${this.compose.label} ${args.join(' ')}`, this.compose.program, [...this.compose.prefix, '--project-name', PROJECT, ...args], { env: this.env, show });
  }

  async step<T>(what: string, action: () => Promise<T>): Promise<T> {
    const started = Date.now();
    console.log(`stack test: ${what}`);
    const result = await action();
    const line = `${what}: ${((Date.now() - started) / 1000).toFixed(0)}s`;
    this.steps.push(line);
    console.log(`stack test: ${line}`);
    return result;
  }

  summary(): string {
    return [...this.steps, `total: ${((Date.now() - this.started) / 1000).toFixed(0)}s`].map((line) => `  ${line}`).join('\n');
  }

  /** Waits until every running service's container reports healthy (and none has stopped). */
  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + READY_LIMIT_MS;
    for (;;) {
      const ids = (await this.run(['ps', '-q'])).split('\n').map((line) => line.trim()).filter(Boolean);
      const states = ids.length
        ? (await mustExec('docker inspect', 'docker', ['inspect', '--format', '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', ...ids]))
          .trim().split('\n')
        : [];
      const waiting = states.filter((line) => !line.endsWith(' running healthy') && !line.endsWith(' running none'));
      if (states.length >= SERVICES && !waiting.length) return;
      const stopped = states.find((line) => /\s(exited|dead)\s/.test(line));
      if (stopped) throw new Error(`a service stopped while the stack was coming up: ${stopped}`);
      checkInterrupted();
      if (Date.now() > deadline) throw new Error(`the stack was not healthy within ${READY_LIMIT_MS / 60_000} minutes: ${waiting.join('; ') || `${states.length} containers`}`);
      await sleep(3000);
    }
  }

  /** What a person needs to see when the stack misbehaved: the services and the end of their logs. */
  async diagnose(): Promise<void> {
    const ps = await exec(this.compose.program, [...this.compose.prefix, '--project-name', PROJECT, 'ps'], { env: this.env });
    console.error(ps.output);
    const logs = await exec(this.compose.program, [...this.compose.prefix, '--project-name', PROJECT, 'logs', '--no-color', '--tail', '40'], { env: this.env });
    console.error(logs.output);
    const server = await exec(this.compose.program, [...this.compose.prefix, '--project-name', PROJECT, 'exec', '-T', 'temporal', 'tail', '-n', '10', '/var/lib/temporal/temporal-server.log'], { env: this.env });
    if (server.code === 0) console.error(`the Temporal server's log:\n${server.output.split('\n').map((line) => line.slice(0, 400)).join('\n')}`);
  }
}

async function createKey(stack: Stack): Promise<string> {
  const output = await stack.run(['exec', '-T', 'gateway', 'node', '--import', 'tsx', 'scripts/keys.ts', 'create', '--name', 'stack-test', '--role', 'analyze']);
  const key = output.match(/^dk_[A-Za-z0-9_-]+$/m)?.[0];
  if (!key) throw new Error(`scripts/keys.ts printed no key:\n${output}`);
  return key;
}

async function upload(stack: Stack, key: string, content: Buffer): Promise<string> {
  const form = new FormData();
  form.append('upload', new Blob([content], { type: 'application/octet-stream' }), 'stack-test.bin');
  const response = await fetch(`${stack.gateway}/${ENGINE}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` } });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`POST /${ENGINE}/upload answered ${response.status}: ${body}`);
  const jobid = (JSON.parse(body) as { jobid?: string }).jobid;
  if (!jobid) throw new Error(`POST /${ENGINE}/upload answered no jobid: ${body}`);
  return jobid;
}

async function result(stack: Stack, key: string, jobid: string): Promise<{ status: string; summary?: string }> {
  const response = await fetch(`${stack.gateway}/result/${jobid}`, { headers: { authorization: `Bearer ${key}` } });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`GET /result/${jobid} answered ${response.status}: ${body}`);
  return JSON.parse(body) as { status: string; summary?: string };
}

async function awaitSuccess(stack: Stack, key: string, jobid: string): Promise<void> {
  const deadline = Date.now() + JOB_LIMIT_MS;
  for (;;) {
    const answer = await result(stack, key, jobid);
    if (answer.status === 'Success') return;
    if (answer.status === 'Fail') throw new Error(`job ${jobid} failed: ${answer.summary}`);
    checkInterrupted();
    if (Date.now() > deadline) throw new Error(`job ${jobid} was still ${answer.status} after ${JOB_LIMIT_MS / 60_000} minutes`);
    await sleep(1000);
  }
}

async function link(stack: Stack, key: string, jobid: string): Promise<Buffer> {
  const response = await fetch(`${stack.gateway}/link/${jobid}`, { headers: { authorization: `Bearer ${key}` } });
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200) throw new Error(`GET /link/${jobid} answered ${response.status}: ${body.toString()}`);
  if (!body.length) throw new Error(`GET /link/${jobid} answered an empty result`);
  return body;
}

async function webUi(port: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`the Temporal Web UI on port ${port} answered ${response.status}`);
}

async function main(): Promise<void> {
  const compose = findCompose();
  const [gatewayPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const egressNetwork = `${PROJECT}-egress`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKET_POSTGRES_PASSWORD: randomBytes(18).toString('base64url'),
    DOCKET_TEMPORAL_DB_PASSWORD: randomBytes(18).toString('base64url'),
    DOCKET_S3_SECRET_KEY: randomBytes(18).toString('base64url'),
    DOCKET_STACK_PORT: String(gatewayPort),
    DOCKET_STACK_TEMPORAL_PORT: String(temporalPort),
    DOCKET_STACK_UI_PORT: String(uiPort),
    DOCKET_EGRESS_NETWORK: egressNetwork,
    // The optional Web UI comes up too, so its image and service are tested with the rest.
    COMPOSE_PROFILES: 'ui',
  };
  const stack = new Stack(compose, env, `http://127.0.0.1:${gatewayPort}`);
  console.log(`stack test: project ${PROJECT} with ${compose.label}, gateway on ${stack.gateway}`);

  let failed = false;
  const onSignal = () => { interrupted = true; };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // Arguments to test:stack go to stack:build (--node-image, --build-network).
    await stack.step('build the images (npm run stack:build)', () => mustExec('npm run stack:build', 'npx', ['--no-install', 'tsx', join('scripts', 'stack.ts'), ...process.argv.slice(2)], { show: true }));
    await stack.step('up', () => stack.run(['up', '-d']));
    await stack.step('every service healthy', () => stack.waitHealthy());
    await stack.step('the Temporal Web UI answers', () => webUi(uiPort));
    const key = await stack.step('an API key', () => createKey(stack));
    // Fresh bytes each run, so the engine really runs instead of answering from a cache.
    const content = Buffer.concat([Buffer.from('docket stack test\n'), randomBytes(4096)]);
    const jobid = await stack.step(`upload to /${ENGINE}/upload`, () => upload(stack, key, content));
    await stack.step(`job ${jobid} Success`, () => awaitSuccess(stack, key, jobid));
    const before = await link(stack, key, jobid);
    await stack.step('down (volumes kept)', () => stack.run(['down']));
    await stack.step('up again', () => stack.run(['up', '-d']));
    await stack.step('every service healthy again', () => stack.waitHealthy());
    await stack.step(`job ${jobid} read again`, async () => {
      const answer = await result(stack, key, jobid);
      if (answer.status !== 'Success') throw new Error(`after the restart job ${jobid} is ${answer.status}, not Success: the history did not survive`);
      const after = await link(stack, key, jobid);
      if (!after.equals(before)) throw new Error(`after the restart GET /link/${jobid} answered other bytes (${after.length} against ${before.length})`);
    });
  } catch (error) {
    failed = true;
    console.error(`stack test: FAILED: ${(error as Error).message}`);
    await stack.diagnose().catch((diagnoseError) => console.error(`stack test: could not collect logs: ${(diagnoseError as Error).message}`));
  } finally {
    const down = await exec(compose.program, [...compose.prefix, '--project-name', PROJECT, 'down', '--volumes', '--remove-orphans', '--timeout', '20'], { env });
    if (down.code !== 0) {
      failed = true;
      console.error(`stack test: tearing down ${PROJECT} failed; remove it with  ${compose.label} --project-name ${PROJECT} down --volumes\n${down.output}`);
    }
    // The engines role creates the egress network on first use of an egress engine; it outlives the project.
    await exec('docker', ['network', 'rm', egressNetwork]);
  }
  if (interrupted) failed = true;
  console.log(`stack test: ${failed ? 'FAILED' : 'passed'}\n${stack.summary()}`);
  process.exit(failed ? 1 : 0);
}

main().catch((error) => {
  console.error(`stack test: ${(error as Error).message}`);
  process.exit(1);
});
