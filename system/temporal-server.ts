/**
 * The production Temporal server, Go-built (scripts/provision.sh temporal-server), on PostgreSQL with
 * advanced visibility on PostgreSQL: its databases and schemas, its config file, its process, and the
 * namespace Docket uses. `npm run temporal` (scripts/temporal.ts) drives it; the tests call it directly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../contract/messages';
import type { Logger } from '../infra/log';
import type { TemporalTarget } from './temporal-connection';
import { registerNamespace } from './temporal-namespace';

export interface PostgresSettings {
  host: string;
  port: number;
  /** The role the server connects as; `setup` creates it and makes it owner of both databases. */
  user: string;
  password: string;
  /** A superuser `setup` creates the role and databases with; its password comes from PGPASSWORD. */
  adminUser: string;
  database: string;
  visibilityDatabase: string;
}

export interface ServerPorts {
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  frontendMembership: number;
  historyMembership: number;
  matchingMembership: number;
  workerMembership: number;
  metrics: number;
}

/** mTLS on the frontend: the server's certificate and key, and the CA its clients' certificates must chain to. */
export interface ServerTls {
  certFile: string;
  keyFile: string;
  clientCaFile: string;
}

export interface ServerSettings {
  /** Holds `config/docket.yaml`, the dynamic config and the server's log. */
  dir: string;
  /** Folder with the `server` and `sql` binaries. */
  binDir: string;
  bindIp: string;
  ports: ServerPorts;
  postgres: PostgresSettings;
  tls?: ServerTls;
  /** Fixed for the life of the database: history shards cannot be changed after the first start. */
  historyShards: number;
}

export const DEFAULT_SERVER_BIN = join(homedir(), '.cache', 'docket', 'temporal-server', 'bin');
export const DEFAULT_UI_BIN = join(homedir(), '.cache', 'docket', 'temporal-ui', 'bin', 'server');

/** Temporal's own port layout (7233 frontend, 7234 history, …, 6933 membership), moved with the frontend port. */
export function portsFrom(frontend: number): ServerPorts {
  return {
    frontend, frontendHttp: frontend + 10, history: frontend + 1, matching: frontend + 2, worker: frontend + 6,
    frontendMembership: frontend - 300, historyMembership: frontend - 299, matchingMembership: frontend - 298,
    workerMembership: frontend - 294, metrics: frontend + 767,
  };
}

function tool(settings: Pick<ServerSettings, 'binDir'>, name: 'server' | 'sql'): string {
  const path = join(settings.binDir, name);
  if (!existsSync(path)) throw new Error(`the Temporal ${name === 'sql' ? 'sql tool' : 'server'} is not at ${path}: run  bash scripts/provision.sh temporal-server  (or set DOCKET_TEMPORAL_BIN to the folder holding server and sql)`);
  return path;
}

interface RunResult { code: number | null; output: string }

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

async function mustRun(what: string, command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<void> {
  const result = await run(command, args, env, input);
  if (result.code === 0) return;
  throw new Error(`${what} failed (exit ${result.code}):\n${result.output.trim().split('\n').slice(-15).join('\n')}`);
}

/** Where `psql` is: on PATH, or in Debian's versioned folder that postgresql installs it into. */
function psql(): string {
  for (const path of ['/usr/bin/psql', '/usr/lib/postgresql/15/bin/psql']) if (existsSync(path)) return path;
  return 'psql';
}

// psql fills in :'name' (a literal) and :"name" (an identifier) itself, so no value is ever spliced into SQL here.
const CREATE_ROLE_AND_DATABASES = String.raw`
\getenv password DOCKET_SETUP_DB_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') AS create_role \gset
\if :create_role
CREATE ROLE :"user" LOGIN PASSWORD :'password';
\else
ALTER ROLE :"user" LOGIN PASSWORD :'password';
\endif
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') AS create_db \gset
\if :create_db
CREATE DATABASE :"db" OWNER :"user";
\endif
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'vis') AS create_vis \gset
\if :create_vis
CREATE DATABASE :"vis" OWNER :"user";
\endif
`;

/**
 * Creates the role and both databases (idempotent: an existing role gets the password given), then
 * brings both schemas to the version the sql tool embeds for this server release.
 */
export async function setupDatabases(settings: ServerSettings, log: Logger): Promise<void> {
  const pg = settings.postgres;
  const sql = tool(settings, 'sql');
  log.info(`temporal: creating role ${pg.user} and databases ${pg.database}, ${pg.visibilityDatabase} on ${pg.host}:${pg.port} as ${pg.adminUser}`);
  await mustRun(
    'creating the Temporal role and databases with psql',
    psql(),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.host, '-p', String(pg.port), '-U', pg.adminUser, '-d', 'postgres',
      '-v', `user=${pg.user}`, '-v', `db=${pg.database}`, '-v', `vis=${pg.visibilityDatabase}`],
    { ...process.env, DOCKET_SETUP_DB_PASSWORD: pg.password },
    CREATE_ROLE_AND_DATABASES,
  );
  // The sql tool reads its password from SQL_PASSWORD, which keeps it out of the process list.
  const env = { ...process.env, SQL_PASSWORD: pg.password };
  const common = ['--plugin', 'postgres12', '--ep', pg.host, '-p', String(pg.port), '-u', pg.user];
  for (const [database, schema] of [[pg.database, 'postgresql/v12/temporal'], [pg.visibilityDatabase, 'postgresql/v12/visibility']]) {
    log.info(`temporal: schema ${schema} in database ${database}`);
    await mustRun(`setting up the schema of ${database}`, sql, [...common, '--db', database, 'setup-schema', '-v', '0.0'], env);
    await mustRun(`updating the schema of ${database} to ${schema}`, sql, [...common, '--db', database, 'update-schema', '--schema-name', schema], env);
  }
}

/** PostgreSQL keeps membership ports in a smallint column: a port above this fails the server at start. */
export const MAX_MEMBERSHIP_PORT = 32767;

/** The server's config: Docket's own, written from what Temporal's config loader reads. */
export function serverConfig(settings: ServerSettings): string {
  const { ports, postgres: pg, bindIp } = settings;
  for (const name of ['frontendMembership', 'historyMembership', 'matchingMembership', 'workerMembership'] as const) {
    if (ports[name] > MAX_MEMBERSHIP_PORT || ports[name] < 1) {
      throw new Error(`the ${name} port ${ports[name]} is outside 1–${MAX_MEMBERSHIP_PORT}, which is all the PostgreSQL schema can store: choose a frontend port whose membership ports (frontend − 300 … − 294) fit`);
    }
  }
  const store = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12', databaseName, connectAddr: `${pg.host}:${pg.port}`, connectProtocol: 'tcp',
      user: pg.user,
      // Rendered by the server from its environment at start, so the password is in no file.
      password: '__PASSWORD__',
      maxConns, maxIdleConns: maxConns, maxConnLifetime: '1h',
    },
  });
  const service = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: bindIp, ...extra },
  });
  const tls = settings.tls;
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'docket-default',
      visibilityStore: 'docket-visibility',
      numHistoryShards: settings.historyShards,
      datastores: { 'docket-default': store(pg.database, 20), 'docket-visibility': store(pg.visibilityDatabase, 10) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: bindIp === '0.0.0.0' ? '127.0.0.1' : bindIp },
      metrics: { prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${ports.metrics}` } },
      ...(tls
        ? {
          tls: {
            frontend: { server: { certFile: tls.certFile, keyFile: tls.keyFile, clientCaFiles: [tls.clientCaFile], requireClientAuth: true } },
            // The server's own worker service is a client of the frontend too: it presents the server's certificate.
            systemWorker: { certFile: tls.certFile, keyFile: tls.keyFile, client: { serverName: 'localhost', rootCaFiles: [tls.clientCaFile] } },
          },
        }
        : {}),
    },
    services: {
      frontend: service(ports.frontend, ports.frontendMembership, { httpPort: ports.frontendHttp }),
      history: service(ports.history, ports.historyMembership),
      matching: service(ports.matching, ports.matchingMembership),
      worker: service(ports.worker, ports.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'docket',
      currentClusterName: 'docket',
      clusterInformation: { docket: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `localhost:${ports.frontend}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: join(settings.dir, 'config', 'dynamic.yaml'), pollInterval: '10s' },
  };
  const yaml = stringify(config).replaceAll('__PASSWORD__', '{{ env "DOCKET_TEMPORAL_DB_PASSWORD" | quote }}');
  return `# enable-template\n# Written by Docket (npm run temporal -- start); edits are overwritten at the next start.\n${yaml}`;
}

// Workflow Update is what approvals and cancellations use; the history limits stay at the server's defaults.
const DYNAMIC_CONFIG = {
  'frontend.enableUpdateWorkflowExecution': [{ value: true }],
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted': [{ value: true }],
};

/** Writes `config/docket.yaml` and the dynamic config under `settings.dir`; answers the config file's path. */
export function writeServerConfig(settings: ServerSettings): string {
  const configDir = join(settings.dir, 'config');
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const file = join(configDir, 'docket.yaml');
  writeFileSync(file, serverConfig(settings), { mode: 0o600 });
  writeFileSync(join(configDir, 'dynamic.yaml'), stringify(DYNAMIC_CONFIG), { mode: 0o600 });
  return file;
}

export interface RunningServer {
  process: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess, exited: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    if (exited()) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => { clearTimeout(force); resolve(); });
    child.kill('SIGTERM');
  });
}

/**
 * Writes the config, starts the server (log in `<dir>/temporal-server.log`) and waits until its frontend
 * answers `target` — the connection the caller will use, so TLS mistakes show here rather than later.
 */
export async function startServer(settings: ServerSettings, target: TemporalTarget, limitMs = 120_000): Promise<RunningServer> {
  writeServerConfig(settings);
  const logFile = join(settings.dir, 'temporal-server.log');
  const out = openSync(logFile, 'a', 0o600);
  // No authorizer: with mTLS only holders of a certificate from the client CA get in at all.
  const child = spawn(tool(settings, 'server'), ['--root', settings.dir, '--config', 'config', '--env', 'docket', '--allow-no-auth', 'start'], {
    stdio: ['ignore', out, out],
    env: { ...process.env, DOCKET_TEMPORAL_DB_PASSWORD: settings.postgres.password },
  });
  let exited: string | undefined;
  child.on('exit', (code, signal) => { exited = `exited with ${signal ?? code}`; });
  child.on('error', (error) => { exited = `could not be started (${error.message})`; });
  const stop = () => stopChild(child, () => exited !== undefined);
  try {
    await waitForFrontend(target, () => exited && `the Temporal server ${exited}; the end of ${logFile}:\n${logTail(logFile)}`, limitMs);
  } catch (error) {
    await stop();
    throw error;
  }
  return { process: child, logFile, stop };
}

function logTail(file: string): string {
  try {
    // The server logs JSON with whole stack traces: the message and error at the front of each line say enough.
    return readFileSync(file, 'utf8').trim().split('\n').slice(-6).map((line) => line.slice(0, 400)).join('\n');
  } catch {
    return '(no log written)';
  }
}

async function waitForFrontend(target: TemporalTarget, gone: () => string | undefined, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const why = gone();
    if (why) throw new Error(why);
    try {
      // No retry interceptor: this loop is the retry (as waitForTemporal's); the SDK's would back off
      // up to 5 s inside one try, so the probe could go on waiting seconds after the server answered.
      const connection = await Connection.connect({ ...target.connection, connectTimeout: 2000, interceptors: [] });
      try {
        // The frontend answers before the system namespace exists; describing it waits for the cluster to be whole.
        await connection.workflowService.describeNamespace({ namespace: 'temporal-system' });
      } finally {
        await connection.close();
      }
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`the Temporal server did not answer on ${target.connection.address} within ${limitMs / 1000}s: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

const SEARCH_ATTRIBUTE_TYPES: Record<string, number> = { Keyword: 2, KeywordList: 7 };

/**
 * Gives Docket its namespace on the server: created with the retention when missing, and Docket's
 * search attributes registered in it (SQL visibility keeps them per namespace). Waits until the
 * frontend lists them, since a workflow started before that is refused for naming an unknown attribute.
 */
export async function prepareNamespace(connection: Connection, namespace: string, retentionMs: number, log: Logger, limitMs = 60_000): Promise<void> {
  if (await registerNamespace(connection, namespace, retentionMs)) log.info(`temporal: namespace ${namespace} registered`);
  const deadline = Date.now() + limitMs;
  let added = false;
  for (;;) {
    let listed;
    try {
      listed = await connection.operatorService.listSearchAttributes({ namespace });
    } catch (error) {
      // A namespace just registered takes a moment to reach the frontend's cache.
      if ((error as { code?: number }).code !== 5 || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    const known = new Set(Object.keys(listed.customAttributes ?? {}));
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !known.has(name));
    if (!missing.length) break;
    if (Date.now() > deadline) throw new Error(`search attributes ${missing.map(([name]) => name).join(', ')} are still not listed in namespace ${namespace}`);
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, SEARCH_ATTRIBUTE_TYPES[type]])),
    });
    log.info(`temporal: search attributes ${missing.map(([name]) => name).join(', ')} registered in ${namespace}`);
    added = true;
  }
  if (added) await awaitSearchAttributesAccepted(connection, namespace, log);
}

/**
 * Each server service caches the search attributes for up to a minute, so one just registered is
 * listed yet refused at a workflow start for a while. Start (and terminate at once) a workflow that
 * carries them all, on a queue no worker polls, until the server takes it.
 */
async function awaitSearchAttributesAccepted(connection: Connection, namespace: string, log: Logger, limitMs = 120_000): Promise<void> {
  const client = new Client({ connection, namespace });
  const values = Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((name) => [name, ['probe']]));
  log.info('temporal: waiting for the server to accept the new search attributes (its caches refresh within a minute)');
  const deadline = Date.now() + limitMs;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const handle = await client.workflow.start('DocketSearchAttributeProbe', {
        taskQueue: 'docket-search-attribute-probe', workflowId: `docket-search-attribute-probe-${Date.now()}-${attempt}`, searchAttributes: values,
      });
      await handle.terminate('probe: the search attributes are accepted');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`the server still refuses Docket's search attributes after ${limitMs / 1000}s: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

export interface UiSettings {
  binary: string;
  /** Where the UI server listens. */
  ip: string;
  port: number;
  /** The frontend it reads from, with the client certificate it presents when the frontend wants one. */
  temporalAddress: string;
  tls?: { caFile: string; certFile: string; keyFile: string };
  dir: string;
}

/** Starts Temporal's Web UI server (its own config file, written under `dir`), pointed at the frontend. */
export function startUi(settings: UiSettings): RunningServer {
  if (!existsSync(settings.binary)) throw new Error(`the Temporal UI server is not at ${settings.binary}: run  bash scripts/provision.sh temporal-ui  (or set DOCKET_TEMPORAL_UI_BIN)`);
  const configDir = join(settings.dir, 'ui-config');
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const config = {
    temporalGrpcAddress: settings.temporalAddress,
    host: settings.ip,
    port: settings.port,
    enableUi: true,
    defaultNamespace: 'default',
    ...(settings.tls ? { tls: { caFile: settings.tls.caFile, certFile: settings.tls.certFile, keyFile: settings.tls.keyFile, serverName: 'localhost' } } : {}),
  };
  writeFileSync(join(configDir, 'docket.yaml'), stringify(config), { mode: 0o600 });
  const logFile = join(settings.dir, 'temporal-ui.log');
  const out = openSync(logFile, 'a', 0o600);
  const child = spawn(settings.binary, ['--root', settings.dir, '--config', 'ui-config', '--env', 'docket', 'start'], { stdio: ['ignore', out, out] });
  let exited = false;
  child.on('exit', () => { exited = true; });
  child.on('error', () => { exited = true; });
  return { process: child, logFile, stop: () => stopChild(child, () => exited) };
}
