import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../core/config';
import { silentLogger } from '../../infra/log';
import { startSystem, type System } from '../../system/start-system';
import { freePort } from '../../system/temporal-dev';
import { docker, readVolumeFile } from '../helpers/engines';
import { ROOT, temporalAddress } from '../helpers/system';

/**
 * An upgrade in place: investigations started by the previous release (v0.1.0, run from a git
 * worktree as its own processes) wait for approval; those processes stop; the current code starts on the
 * same Temporal namespace, task queues, data folder and blob store, and an approval sent through the new
 * gateway with the key made on the old release lets each investigation finish, running its responder once.
 */

const RELEASE = 'v0.1.0';
/**
 * The commit v0.1.0 names. A clone does not always carry tags (CI clones main without them), so the
 * worktree is made from the commit, which every clone of main has.
 */
const RELEASE_COMMIT = '314dfe75a4f941d08f4d5ae8337e92bbffa27a6f';
const ENGINES = ['ioc-lookup', 'blocklist'];
/** Both are in the sample feed as phishing, so the policy asks for approval to blocklist each. */
const PHISH = [
  { text: 'phish at hxxps://evil[.]example/login', entry: 'https://evil.example/login' },
  { text: 'phish at hxxps://evil[.]example/account/verify', entry: 'https://evil.example/account/verify' },
];
const WAIT_MS = 90_000;

const run = promisify(execFile);

describe(`an upgrade from ${RELEASE} with investigations waiting for approval`, () => {
  const work = mkdtempSync(join(tmpdir(), 'docket-upgrade-'));
  const worktree = join(work, `docket-${RELEASE}`);
  const dataDir = join(work, 'data');
  const volume = `docket-blocklist-upgrade-${randomBytes(4).toString('hex')}`;
  const queuePrefix = `up${randomBytes(4).toString('hex')}-`;
  let old: ChildProcess | undefined;
  let current: System | undefined;

  beforeAll(async () => {
    await run('git', ['-C', ROOT, 'worktree', 'add', '--detach', worktree, RELEASE_COMMIT]);
    symlinkSync(join(ROOT, 'node_modules'), join(worktree, 'node_modules'), 'dir');
    mkdirSync(join(work, 'schedules'));
  });

  afterAll(async () => {
    if (old) await stop(old);
    await current?.stop();
    await run('git', ['-C', ROOT, 'worktree', 'remove', '--force', worktree]).catch(() => undefined);
    await run('git', ['-C', ROOT, 'worktree', 'prune']).catch(() => undefined);
    await docker.getVolume(volume).remove().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  });

  it('lets the new gateway approve them with the old key, each responder running exactly once, and each report completing', async () => {
    const env = {
      TEMPORAL_ADDRESS: temporalAddress(),
      DOCKET_DATA_DIR: dataDir,
      DOCKET_QUEUE_PREFIX: queuePrefix,
      DOCKET_SCHEDULES_DIR: join(work, 'schedules'),
      DOCKET_LOG_LEVEL: 'warn',
    };

    // The old release: its key CLI, then all its roles in one process, with its own engine manifests and policy.
    const key = await createKey(worktree, env);
    const oldPort = await freePort();
    const oldLog = join(work, 'old.log');
    old = startRelease(worktree, {
      ...env,
      DOCKET_PORT: String(oldPort),
      DOCKET_ENGINES_DIR: engineFolder(worktree, join(work, 'engines-old'), volume),
      DOCKET_POLICY_FILE: join(worktree, 'policy.yaml'),
    }, oldLog);
    const oldGateway = new Gateway(`http://127.0.0.1:${oldPort}`, key);
    await oldGateway.ready(old, oldLog);

    const waiting: Array<{ id: string; responseId: string; entry: string }> = [];
    for (const phish of PHISH) {
      const started = await oldGateway.call('POST', '/v1/investigations', { text: phish.text });
      expect(started.status).toBe(202);
      const pending = await oldGateway.pending(started.body.id);
      expect(pending).toMatchObject({ responder: 'blocklist', observable: { type: 'url', data: phish.entry } });
      waiting.push({ id: started.body.id, responseId: pending.id, entry: phish.entry });
    }
    await stop(old);
    old = undefined;

    // The current code, in this process, on the same Temporal, task queues and data folder.
    current = await startSystem({
      config: loadConfig({
        ...env,
        DOCKET_PORT: '0',
        DOCKET_ENGINES_DIR: engineFolder(ROOT, join(work, 'engines-new'), volume),
        DOCKET_POLICY_FILE: join(ROOT, 'policy.yaml'),
      }),
      log: silentLogger,
      workflowBundle: { codePath: process.env.DOCKET_TEST_BUNDLE! },
      audit: () => undefined,
    });
    const gateway = new Gateway(current.url!, key);

    for (const job of waiting) {
      // The new gateway reads the old release's waiting investigation as waiting, with the same response.
      expect((await gateway.pending(job.id)).id).toBe(job.responseId);
      const approved = await gateway.call('POST', `/v1/investigations/${job.id}/approve`, { responseId: job.responseId });
      expect(approved.status).toBe(200);
    }
    for (const job of waiting) {
      const report = await gateway.completed(job.id);
      expect(report.responses).toHaveLength(1);
      expect(report.responses[0]).toMatchObject({ responder: 'blocklist', approval: { state: 'approved' }, report: { status: 'success' } });
      expect(await responderRuns(current, job.id, `${queuePrefix}engine.blocklist`)).toBe(1);
    }
    const entries = (await readVolumeFile(volume, '/volume/blocklist.txt')).split('\n').filter(Boolean);
    expect(entries.sort()).toEqual(waiting.map((job) => job.entry).sort());
  });
});

/** The release's manifests for the engines the scenario uses, the blocklist writing to this test's volume. */
function engineFolder(checkout: string, dir: string, volume: string): string {
  for (const name of ENGINES) {
    const manifest = parse(readFileSync(join(checkout, 'engines', name, 'engine.yaml'), 'utf8')) as Record<string, unknown>;
    mkdirSync(join(dir, name), { recursive: true });
    const written = name === 'blocklist' ? { ...manifest, volumes: [{ name: volume, target: '/blocklist' }] } : manifest;
    writeFileSync(join(dir, name, 'engine.yaml'), stringify(written));
  }
  return dir;
}

function releaseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // Only what a deployment would set: none of this test run's own DOCKET_* settings leak into the release.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DOCKET_') && !name.startsWith('TEMPORAL_')));
  return { ...inherited, ...extra };
}

async function createKey(checkout: string, env: Record<string, string>): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/keys.ts', 'create', '--name', 'analyst', '--role', 'respond'], {
    cwd: checkout, env: releaseEnv(env), timeout: 60_000,
  });
  const key = /store it now:\s+(\S+)/.exec(stdout)?.[1];
  if (!key) throw new Error(`the ${RELEASE} key CLI printed no key: ${stdout}`);
  return key;
}

function startRelease(checkout: string, env: Record<string, string>, logFile: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/run.ts', 'all'], { cwd: checkout, env: releaseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const append = (chunk: Buffer) => writeFileSync(logFile, chunk, { flag: 'a' });
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(force);
}

/** Responder activities Temporal scheduled for one investigation, read from its history. */
async function responderRuns(system: System, workflowId: string, taskQueue: string): Promise<number> {
  const history = await system.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((event) => event.activityTaskScheduledEventAttributes?.taskQueue?.name === taskQueue).length;
}

class Gateway {
  constructor(private readonly base: string, private readonly key: string) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  async ready(child: ChildProcess, logFile: string): Promise<void> {
    await until('the old release to answer /healthz', async () => {
      if (child.exitCode !== null) throw new Error(`the ${RELEASE} processes exited with ${child.exitCode}: ${existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : ''}`);
      const response = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
      await response?.arrayBuffer();
      return response?.ok ? true : undefined;
    });
  }

  async pending(id: string): Promise<any> {
    const current = await until(`investigation ${id} to wait for approval`, async () => {
      const { body } = await this.call('GET', `/v1/investigations/${id}`);
      if (body?.state === 'completed' || body?.state === 'failed') throw new Error(`investigation ${id} ended without waiting for approval: ${JSON.stringify(body).slice(0, 2000)}`);
      return body?.status?.responses?.some((r: any) => r.approval?.state === 'pending') ? body : undefined;
    });
    return current.status.responses.find((r: any) => r.approval.state === 'pending');
  }

  async completed(id: string): Promise<any> {
    const done = await until(`investigation ${id} to complete`, async () => {
      const { body } = await this.call('GET', `/v1/investigations/${id}`);
      if (body?.state === 'failed') throw new Error(`investigation ${id} failed: ${body.error}`);
      return body?.state === 'completed' ? body : undefined;
    });
    return done.report;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${WAIT_MS / 1000}s waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 250));
  }
}
