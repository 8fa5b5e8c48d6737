import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import { portIsFree } from '../../system/temporal-dev';
import { getJson, upload } from '../helpers/fixtures';
import { alive, commandOf, descendants, Launcher } from '../helpers/launcher';
import { poll } from '../helpers/system';
import { WorkflowType } from '../../contract/messages';

/** The Temporal CLI itself, not the tether whose arguments name it. */
const isDevServer = (pid: number) => commandOf(pid).includes('server start-dev') && !/tether\.(ts|js)/.test(commandOf(pid));
const isRole = (pid: number) => commandOf(pid).includes('bin/docket');

async function within<T>(promise: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), limitMs); });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

const finished = (baseUrl: string, id: string) =>
  poll(() => getJson(`${baseUrl}/result/${id}`).catch(() => ({ status: 0, body: {} as Record<string, any> })),
    (r) => ['Success', 'Fail'].includes(r.body.status), `job ${id}`, 180_000);

const healthy = (baseUrl: string) =>
  poll(() => fetch(`${baseUrl}/healthz`).then((r) => r.status, () => 0), (status) => status === 200, `${baseUrl}/healthz`, 180_000);

describe('npm start: each role a supervised child process', () => {
  let launcher: Launcher;
  let connection: Connection;
  let client: Client;
  let firstJob: string;

  beforeAll(async () => {
    launcher = await Launcher.start();
    await launcher.waitFor(/docket: running; gateway on/);
    // The roles' own probes can see the server answer before the launcher's does: its line may come after "running".
    await launcher.waitFor(/temporal: the dev server answers/);
    connection = await Connection.connect({ address: `127.0.0.1:${launcher.ports.temporal}` });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await connection?.close();
    await launcher?.kill();
  });

  it('starts the roles beside the dev server, before it answers, and they connect once it does', () => {
    const answered = launcher.output.indexOf('temporal: the dev server answers');
    const serverStarted = launcher.output.indexOf('supervisor: temporal started');
    expect(answered).toBeGreaterThan(-1);
    expect(serverStarted).toBeGreaterThan(-1);
    for (const role of ['worker', 'engines', 'gateway']) {
      const started = launcher.output.indexOf(`supervisor: ${role} started`);
      expect(started).toBeGreaterThan(-1);
      expect(started).toBeLessThan(answered);
      // Ready means connected, which needs the server: after it was started. The launcher's own probe and the
      // role's are two observers of the same moment, so "ready" may be logged a little before "answers".
      expect(launcher.output.indexOf(`supervisor: ${role} ready`)).toBeGreaterThan(serverStarted);
    }
  });

  it('keeps the workers serving while the gateway is killed with SIGKILL, and brings the gateway back', async () => {
    const content = `a sample uploaded before the gateway dies ${randomUUID()}\n`;
    const accepted = await upload(launcher.baseUrl, 'fileinfo', content, 'before.txt');
    expect(accepted.status).toBe(200);
    firstJob = accepted.body.jobid;

    const gateway = await launcher.rolePid('gateway');
    process.kill(gateway, 'SIGKILL');
    // With the gateway gone, a job started straight through Temporal is still taken up by the main and engine workers.
    const second = randomUUID();
    const input = InvestigationInput.parse({
      files: [{ sha256: createHash('sha256').update(content).digest('hex'), size: Buffer.byteLength(content), filename: 'again.txt' }],
      engines: ['fileinfo'], source: 'http', depth: 0,
    });
    await client.workflow.start(WorkflowType.investigation, { taskQueue: `${launcher.queuePrefix}docket`, workflowId: second, args: [input] });
    const reports = await within(
      Promise.all([firstJob, second].map((id) => client.workflow.getHandle(id).result() as Promise<InvestigationReport>)),
      180_000, 'both jobs through Temporal',
    );
    for (const report of reports) expect(report).toMatchObject({ status: 'Success', jobs: [expect.objectContaining({ engine: 'fileinfo', status: 'success' })] });

    await launcher.waitFor(new RegExp(`supervisor: gateway \\(pid ${gateway}\\) ended with signal SIGKILL`));
    const restarted = await launcher.rolePid('gateway', 1);
    expect(restarted).not.toBe(gateway);
    await healthy(launcher.baseUrl);
    expect((await finished(launcher.baseUrl, second)).body.status).toBe('Success');
  });

  it('keeps the gateway answering while the engine worker is killed with SIGKILL, and finishes an upload once it is back', async () => {
    const engines = await launcher.rolePid('engines');
    process.kill(engines, 'SIGKILL');
    expect((await fetch(`${launcher.baseUrl}/healthz`)).status).toBe(200);
    const accepted = await upload(launcher.baseUrl, 'fileinfo', `a sample for an engine worker that died ${randomUUID()}\n`);
    expect(accepted.status).toBe(200);

    await launcher.waitFor(new RegExp(`supervisor: engines \\(pid ${engines}\\) ended with signal SIGKILL after [\\d.]+s; restarting it in`));
    expect(await launcher.rolePid('engines', 1)).not.toBe(engines);
    expect((await finished(launcher.baseUrl, accepted.body.jobid)).body.status).toBe('Success');
  });

  it('keeps uploads, the Temporal database and its log private to its user (0700 folders, 0600 files)', () => {
    const data = join(launcher.dir, 'data');
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(data)).toBe(0o700);
    for (const file of ['temporal.db', 'temporal.log']) expect(mode(join(data, file))).toBe(0o600);
    const shards = readdirSync(join(data, 'blobs', 'sha256'));
    expect(shards.length).toBeGreaterThan(0);
    for (const folder of [join(data, 'blobs'), join(data, 'blobs', 'sha256'), join(data, 'blobs', 'sha256', shards[0])]) expect(mode(folder)).toBe(0o700);
    for (const blob of readdirSync(join(data, 'blobs', 'sha256', shards[0]))) expect(mode(join(data, 'blobs', 'sha256', shards[0], blob))).toBe(0o600);
  });

  it('restarts a Temporal dev server that dies, on the same database', async () => {
    const [, pid] = (await launcher.waitFor(/supervisor: temporal runs its command as pid (\d+)/))[0];
    expect(isDevServer(Number(pid))).toBe(true);
    process.kill(Number(pid), 'SIGKILL');
    await launcher.waitFor(/supervisor: temporal \(pid \d+\) ended with signal SIGKILL/);
    await launcher.waitFor(/supervisor: temporal runs its command as pid (\d+)/, 1);
    // A job finished before the restart is still there: the new server opened the same SQLite file.
    expect((await finished(launcher.baseUrl, firstJob)).body.status).toBe('Success');
    const accepted = await poll(() => upload(launcher.baseUrl, 'fileinfo', `after the restart ${randomUUID()}\n`).catch(() => ({ status: 0, body: {} as Record<string, any> })),
      (r) => r.status === 200, 'an upload accepted by the restarted server', 120_000);
    expect((await finished(launcher.baseUrl, accepted.body.jobid)).body.status).toBe('Success');
  });

  it('stops every child and the Temporal dev server on SIGTERM, leaving no process behind', async () => {
    const family = descendants(launcher.pid);
    expect(family.filter(isDevServer)).toHaveLength(1);
    expect(family.filter(isRole)).toHaveLength(3);
    process.kill(launcher.pid, 'SIGTERM');
    expect(await within(launcher.exited, 60_000, 'the launcher to exit')).toEqual({ code: 0, signal: null });
    expect(family.filter(alive)).toEqual([]);
    expect(await portIsFree(launcher.ports.temporal)).toBe(true);
    expect(launcher.output).toContain('docket: stopped');
  });
});

describe('npm start: what it leaves when it cannot run', () => {
  it('takes its children and the Temporal dev server down with it when the launcher is killed with SIGKILL', async () => {
    const launcher = await Launcher.start();
    try {
      await launcher.waitFor(/docket: running; gateway on/);
      const family = descendants(launcher.pid);
      expect(family.filter(isDevServer)).toHaveLength(1);
      expect(family.filter(isRole)).toHaveLength(3);
      process.kill(launcher.pid, 'SIGKILL');
      await within(launcher.exited, 30_000, 'the launcher to die');
      await poll(async () => family.filter(alive), (left) => left.length === 0, 'the children of a killed launcher to exit', 60_000);
      expect(await portIsFree(launcher.ports.temporal)).toBe(true);
    } finally {
      await launcher.kill();
    }
  });

  it('refuses to start when the Temporal port is held, naming the port and how to find what holds it', async () => {
    const holder: Server = createServer();
    const launcher = await Launcher.start((ports) => new Promise((resolve) => holder.listen(ports.temporal, '127.0.0.1', resolve)));
    try {
      const exit = await within(launcher.exited, 60_000, 'the launcher to exit');
      expect(exit.code).toBe(1);
      expect(launcher.output).not.toContain('supervisor: temporal started');
      const port = launcher.ports.temporal;
      expect(launcher.output).toContain(`port ${port} on 127.0.0.1 (DOCKET_TEMPORAL_PORT, for the Temporal dev server) is already in use`);
      expect(launcher.output).toContain(`ss -ltnp 'sport = :${port}'`);
      expect(launcher.output).toContain(`TEMPORAL_ADDRESS=127.0.0.1:${port}`);
    } finally {
      holder.close();
      await launcher.kill();
    }
  });
});
