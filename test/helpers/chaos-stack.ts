/**
 * The production stack the chaos run kills, one process at a time: PostgreSQL, the Go-built Temporal
 * server on it, a Versity S3 gateway, a second dockerd of the run's own (never the machine's), and
 * each of Docket's roles as its own `bin/docket` process. Every part can be killed with SIGKILL and
 * started again on the same data, port and socket, as a service manager would.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { loadConfig } from '../../core/config';
import { silentLogger } from '../../infra/log';
import { temporalTarget, type TemporalTarget } from '../../system/temporal-connection';
import { freePort, portIsFree } from '../../system/temporal-dev';
import {
  DEFAULT_SERVER_BIN, MAX_MEMBERSHIP_PORT, prepareNamespace, setupDatabases, startServer, type RunningServer, type ServerSettings,
} from '../../system/temporal-server';
import { buildHostileImage, HOSTILE_ENGINES, HOSTILE_IMAGE, writeHostileManifests } from './chaos-hostile';
import { alive, descendants } from './launcher';
import { OwnDockerd } from './own-dockerd';
import { ROOT } from './system';
import { versitygwBinary } from './versitygw';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Waits for `check` to answer true, every `everyMs`, at most `limitMs`; `what` names it in the error. */
export async function waitUntil(check: () => Promise<boolean> | boolean, what: string, limitMs = 120_000, everyMs = 250): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${limitMs / 1000}s`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A free port below what PostgreSQL's membership table can store, searched a bounded number of times. */
async function membershipPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * (MAX_MEMBERSHIP_PORT - 20_000));
    if (taken.has(port)) continue;
    if (await portIsFree(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port between 20000 and ${MAX_MEMBERSHIP_PORT} after 200 tries`);
}

/** PostgreSQL 15 in a folder of the run's own, run as the postgres user. */
class Postgres {
  readonly data: string;
  readonly sockets: string;

  constructor(readonly dir: string, readonly port: number) {
    this.data = join(dir, 'data');
    this.sockets = join(dir, 'run');
  }

  private as(command: string, args: string[]): void {
    execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, command), ...args], { stdio: 'pipe' });
  }

  init(adminPassword: string): void {
    mkdirSync(this.sockets, { recursive: true });
    const pwfile = join(this.dir, 'admin-password');
    writeFileSync(pwfile, `${adminPassword}\n`);
    execFileSync('chown', ['-R', 'postgres:postgres', this.dir]);
    this.as('initdb', ['-D', this.data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=peer', '--auth-host=scram-sha-256', '-E', 'UTF8']);
  }

  start(): void {
    this.as('pg_ctl', ['-D', this.data, '-l', join(this.dir, 'postgres.log'), '-w', '-t', '60', '-o', `-p ${this.port} -k ${this.sockets} -c listen_addresses=127.0.0.1`, 'start']);
  }

  /** The postmaster and every backend at once, as an OOM killer or a power cut would leave it. */
  async kill(): Promise<void> {
    const pid = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const family = [pid, ...descendants(pid)];
    for (const one of family) {
      try {
        process.kill(one, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await waitUntil(() => !family.some(alive), 'PostgreSQL\'s processes to die', 30_000);
  }

  stop(): void {
    try {
      this.as('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // Not running: the folder goes either way.
    }
  }
}

/** Versity's S3 gateway over a folder, restartable on the same folder, port and keys. */
class S3Server {
  readonly root: string;
  readonly endpoint: string;
  readonly accessKeyId = `docket${randomBytes(4).toString('hex')}`;
  readonly secretAccessKey = randomBytes(16).toString('hex');
  readonly client: S3Client;
  private child?: ChildProcess;

  constructor(dir: string, readonly port: number) {
    this.root = join(dir, 's3');
    mkdirSync(this.root, { recursive: true });
    this.endpoint = `http://127.0.0.1:${port}`;
    this.client = new S3Client({
      endpoint: this.endpoint, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey },
    });
  }

  async start(): Promise<void> {
    const binary = versitygwBinary();
    if (!existsSync(binary)) throw new Error(`versitygw is not at ${binary}: run bash scripts/provision.sh versitygw (or set VERSITYGW)`);
    const child = spawn(binary, ['--access', this.accessKeyId, '--secret', this.secretAccessKey, '--port', `127.0.0.1:${this.port}`, '--quiet', 'posix', this.root], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    this.child = child;
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`versitygw exited with ${child.exitCode}`);
      return fetch(this.endpoint).then(async (response) => { await response.arrayBuffer(); return true; }, () => false);
    }, 'versitygw to answer', 30_000, 100);
  }

  async kill(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await exited(this.child);
  }

  env(bucket: string, prefix: string): Record<string, string> {
    return {
      DOCKET_BLOB_URL: `s3://${bucket}/${prefix}`, AWS_ENDPOINT_URL_S3: this.endpoint, AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: this.accessKeyId, AWS_SECRET_ACCESS_KEY: this.secretAccessKey,
    };
  }

  async stop(): Promise<void> {
    this.client.destroy();
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await exited(this.child);
    }
  }
}

/** One of Docket's roles as `bin/docket <args>` in a process group of its own, so a kill reaches all of it. */
export class RoleProcess {
  output = '';
  private child?: ChildProcess;
  starts = 0;

  constructor(readonly name: string, private readonly args: string[], private readonly env: NodeJS.ProcessEnv) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.output = '';
    this.starts += 1;
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'docket'), ...this.args], { cwd: ROOT, env: this.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const collect = (chunk: Buffer) => { this.output = (this.output + chunk.toString('utf8')).slice(-20_000); };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error(`docket ${this.args.join(' ')} exited with ${child.exitCode}:\n${this.output.slice(-3000)}`);
      return /docket \w+: running against/.test(this.output);
    }, `docket ${this.args.join(' ')} to run`, 240_000);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is already empty.
    }
    await exited(child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const force = setTimeout(() => void this.kill(), 20_000);
    await this.kill('SIGTERM');
    clearTimeout(force);
  }
}

export const CHAOS_ENGINES = ['fileinfo', 'ioc-lookup', 'blocklist'] as const;
const IMAGES = ['docket/base:bookworm', 'docket/fileinfo:1.0', 'docket/ioc-lookup:1.0', 'docket/blocklist:1.0', HOSTILE_IMAGE];

/** Everything the chaos run starts, kills and starts again. */
export class ChaosStack {
  readonly roles = new Map<string, RoleProcess>();
  readonly blobPrefix = 'chaos/';
  bucket = '';
  blocklistVolume = `chaos-blocklist-${randomBytes(4).toString('hex')}`;
  respondKey = '';
  gatewayPort = 0;
  private temporal?: RunningServer;
  private settings?: ServerSettings;
  private target?: TemporalTarget;

  private constructor(
    readonly dir: string,
    readonly postgres: Postgres,
    readonly s3: S3Server,
    readonly dockerd: OwnDockerd,
  ) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  get docker(): Docker {
    return this.dockerd.client;
  }

  static async start(log: (line: string) => void): Promise<ChaosStack> {
    const dir = mkdtempSync(join(tmpdir(), 'docket-chaos-'));
    chmodSync(dir, 0o755);
    const stack = new ChaosStack(
      dir,
      new Postgres(join(dir, 'pg'), await freePort()),
      new S3Server(dir, await freePort()),
      // A dockerd of the run's own, in a network namespace of its own (test/helpers/own-dockerd.ts).
      OwnDockerd.create(),
    );
    try {
      await stack.boot(log);
    } catch (error) {
      await stack.stop().catch(() => undefined);
      throw error;
    }
    return stack;
  }

  private async boot(log: (line: string) => void): Promise<void> {
    mkdirSync(this.postgres.dir, { recursive: true });
    log('chaos: PostgreSQL');
    this.postgres.init('admin-secret');
    this.postgres.start();
    log('chaos: versitygw, and the run\'s own dockerd');
    await Promise.all([this.s3.start(), this.dockerd.restart()]);
    this.bucket = `chaos-${randomBytes(4).toString('hex')}`;
    await this.s3.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    log('chaos: loading the engine images into the run\'s dockerd');
    await buildHostileImage();
    await this.dockerd.load(IMAGES);

    log('chaos: the Temporal server on PostgreSQL');
    const frontend = await freePort();
    const taken = new Set<number>();
    this.settings = {
      dir: join(this.dir, 'temporal'), binDir: process.env.DOCKET_TEMPORAL_BIN ?? DEFAULT_SERVER_BIN, bindIp: '127.0.0.1', historyShards: 4,
      ports: {
        frontend, frontendHttp: await freePort(), history: await freePort(), matching: await freePort(), worker: await freePort(),
        frontendMembership: await membershipPort(taken), historyMembership: await membershipPort(taken),
        matchingMembership: await membershipPort(taken), workerMembership: await membershipPort(taken), metrics: await freePort(),
      },
      postgres: {
        host: '127.0.0.1', port: this.postgres.port, user: 'temporal', password: 'temporal-secret', adminUser: 'postgres',
        database: 'temporal', visibilityDatabase: 'temporal_visibility',
      },
    };
    process.env.PGPASSWORD = 'admin-secret';
    try {
      await setupDatabases(this.settings, silentLogger);
    } finally {
      delete process.env.PGPASSWORD;
    }
    const temporalEnv = { TEMPORAL_ADDRESS: `127.0.0.1:${frontend}`, TEMPORAL_NAMESPACE: 'docket' };
    this.target = temporalTarget(loadConfig(temporalEnv), temporalEnv);
    await this.startTemporal();
    const connection = await Connection.connect(this.target.connection);
    try {
      await prepareNamespace(connection, 'docket', loadConfig(temporalEnv).retentionMs, silentLogger);
    } finally {
      await connection.close();
    }

    const dataDir = join(this.dir, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const { KeyStore } = await import('../../gateway/keys');
    this.respondKey = (await new KeyStore(join(dataDir, 'keys.json')).create('chaos', 'respond')).key;
    const policy = join(this.dir, 'policy.yaml');
    writeFileSync(policy, [
      'rules:',
      '  - name: block malicious web destinations',
      '    when: { types: [url, domain, fqdn, ip], verdict: malicious }',
      '    respond: [blocklist]',
      '    approval: required',
      '    expiry: 24h',
    ].join('\n'));
    const schedules = join(this.dir, 'schedules');
    mkdirSync(schedules);
    this.gatewayPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...temporalEnv,
      ...this.s3.env(this.bucket, this.blobPrefix),
      DOCKER_HOST: this.dockerd.host,
      DOCKET_DATA_DIR: dataDir,
      DOCKET_ENGINES_DIR: this.enginesFolder(),
      DOCKET_POLICY_FILE: policy,
      DOCKET_SCHEDULES_DIR: schedules,
      DOCKET_ANONYMOUS: 'analyze',
      DOCKET_RATE_LIMIT: '0',
      DOCKET_QUEUE_PREFIX: `c${randomBytes(3).toString('hex')}-`,
      DOCKET_HOST: '127.0.0.1',
      DOCKET_PORT: String(this.gatewayPort),
      DOCKET_WORKER_PORT: '0',
      DOCKET_ENGINES_PORT: '0',
      DOCKET_LOG_LEVEL: 'info',
    };
    delete env.DOCKET_TEST_TEMPORAL;
    this.roles.set('gateway', new RoleProcess('gateway', ['gateway'], env));
    this.roles.set('worker', new RoleProcess('worker', ['worker'], env));
    for (const engine of CHAOS_ENGINES) this.roles.set(`engine:${engine}`, new RoleProcess(`engine:${engine}`, ['engines', engine], env));
    // The hostile engines (test/helpers/chaos-hostile.ts) share one engine worker process.
    this.roles.set('engine:hostile', new RoleProcess('engine:hostile', ['engines', HOSTILE_ENGINES.join(',')], env));
    log('chaos: Docket\'s roles (gateway, main worker, one engine worker per engine)');
    // One at a time: each compiles Docket on start, and the machine has few cores.
    for (const role of this.roles.values()) await role.start();
  }

  private enginesFolder(): string {
    const dir = join(this.dir, 'engines');
    for (const name of CHAOS_ENGINES) {
      mkdirSync(join(dir, name), { recursive: true });
      let manifest = readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8');
      if (name === 'blocklist') manifest = manifest.replace(/name: docket-blocklist\b/, `name: ${this.blocklistVolume}`);
      writeFileSync(join(dir, name, 'engine.yaml'), manifest);
    }
    writeHostileManifests(dir);
    return dir;
  }

  /** A client of the run's Temporal server on Docket's namespace, for checks that read every workflow; the caller closes its connection. */
  async temporalClient(): Promise<Client> {
    const connection = await Connection.connect({ ...this.target!.connection, connectTimeout: 10_000 });
    return new Client({ connection, namespace: 'docket' });
  }

  async startTemporal(): Promise<void> {
    this.temporal = await startServer(this.settings!, this.target!, 180_000);
  }

  async killTemporal(): Promise<void> {
    const child = this.temporal?.process;
    if (!child) return;
    child.kill('SIGKILL');
    await exited(child);
  }

  role(name: string): RoleProcess {
    const role = this.roles.get(name);
    if (!role) throw new Error(`no role ${name} in the chaos stack`);
    return role;
  }

  /** The blocklist as the proxy reads it, from the shared volume on the run's dockerd. */
  async blocklist(): Promise<string[]> {
    const volumes = (await this.docker.listVolumes()).Volumes ?? [];
    if (!volumes.some((volume) => volume.Name === this.blocklistVolume)) return [];
    const container = await this.docker.createContainer({
      Image: 'docket/base:bookworm', Cmd: ['cat', '/volume/blocklist.txt'], Tty: true,
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: this.blocklistVolume, Target: '/volume', ReadOnly: true }] },
    });
    try {
      await container.start();
      await container.wait();
      const logs = (await container.logs({ stdout: true, stderr: false })).toString('utf8');
      return logs.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.includes('No such file'));
    } finally {
      await container.remove({ force: true });
    }
  }

  async stop(): Promise<void> {
    for (const role of this.roles.values()) await role.stop().catch(() => undefined);
    await this.temporal?.stop().catch(() => undefined);
    this.postgres.stop();
    await this.s3.stop().catch(() => undefined);
    try {
      if ((await this.dockerd.client.ping().then(() => true, () => false))) {
        const leftovers = await this.docker.listContainers({ all: true });
        for (const container of leftovers) await this.docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
      }
    } finally {
      await this.dockerd.stop();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
