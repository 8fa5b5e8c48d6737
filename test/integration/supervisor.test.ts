import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import { freePort, portIsFree } from '../../system/temporal-dev';
import { tsxCommand } from '../../system/supervisor';
import { getJson, upload } from '../helpers/fixtures';
import { poll, ROOT } from '../helpers/system';
import { WorkflowType } from '../../contract/messages';

/** `npm start` as a person runs it: the launcher is a real process with real children and its own dev server. */
class Launcher {
  output = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly dir: string, readonly ports: { gateway: number; temporal: number; ui: number; worker: number; engines: number }, readonly queuePrefix: string) {
    mkdirSync(join(dir, 'engines', 'fileinfo'), { recursive: true });
    copyFileSync(join(ROOT, 'engines', 'fileinfo', 'engine.yaml'), join(dir, 'engines', 'fileinfo', 'engine.yaml'));
    mkdirSync(join(dir, 'schedules'), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DOCKET_SKIP_PROVISION: '1',
      DOCKET_DATA_DIR: join(dir, 'data'),
      DOCKET_ENGINES_DIR: join(dir, 'engines'),
      DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
      DOCKET_POLICY_FILE: join(dir, 'no-policy.yaml'),
      DOCKET_PORT: String(ports.gateway),
      DOCKET_WORKER_PORT: String(ports.worker),
      DOCKET_ENGINES_PORT: String(ports.engines),
      DOCKET_TEMPORAL_PORT: String(ports.temporal),
      DOCKET_TEMPORAL_UI_PORT: String(ports.ui),
      DOCKET_QUEUE_PREFIX: queuePrefix,
    };
    delete env.TEMPORAL_ADDRESS;
    const { command, args } = tsxCommand(join(ROOT, 'scripts', 'start.ts'), []);
    this.child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => { this.output += chunk.toString('utf8'); };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** `before` runs once the ports are chosen and before the launcher starts. */
  static async start(before?: (ports: Launcher['ports']) => Promise<void>): Promise<Launcher> {
    const dir = mkdtempSync(join(tmpdir(), 'docket-launcher-'));
    const ports = { gateway: await freePort(), temporal: await freePort(), ui: await freePort(), worker: await freePort(), engines: await freePort() };
    await before?.(ports);
    return new Launcher(dir, ports, `s${randomBytes(4).toString('hex')}-`);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.ports.gateway}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The lines matching `pattern`, once there are more than `after` of them. */
  async waitFor(pattern: RegExp, after = 0, limitMs = 180_000): Promise<RegExpMatchArray[]> {
    const global = new RegExp(pattern.source, 'g');
    const matches = await poll(
      async () => [...this.output.matchAll(global)],
      (found) => found.length > after || this.child.exitCode !== null,
      `${pattern} in the launcher's output:\n${this.output.slice(-3000)}`,
      limitMs,
    );
    if (matches.length <= after) throw new Error(`the launcher exited before printing ${pattern}:\n${this.output.slice(-3000)}`);
    return matches;
  }

  /** The pid the supervisor last started `role` as. */
  async rolePid(role: string, after = 0): Promise<number> {
    const started = await this.waitFor(new RegExp(`supervisor: ${role} started \\(pid (\\d+)\\)`), after);
    return Number(started[started.length - 1][1]);
  }

  count(pattern: RegExp): number {
    return [...this.output.matchAll(new RegExp(pattern.source, 'g'))].length;
  }

  /** Kills whatever is left, for cleanup after a failed test. */
  async kill(): Promise<void> {
    const family = [this.pid, ...descendants(this.pid)];
    for (const pid of family) signal(pid, 'SIGKILL');
    await poll(async () => family.filter(alive), (left) => left.length === 0, 'the launcher and its children to die', 30_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every process below `root`, read from /proc (a process's children are those naming it as parent). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Whether `pid` still runs; a zombie waiting for a parent that does not reap it counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** The Temporal CLI itself, not the tether whose arguments name it. */
const isDevServer = (pid: number) => commandOf(pid).includes('server start-dev') && !commandOf(pid).includes('tether.ts');
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
    connection = await Connection.connect({ address: `127.0.0.1:${launcher.ports.temporal}` });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await connection?.close();
    await launcher?.kill();
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
