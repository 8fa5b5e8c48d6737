/**
 * `npm run temporal -- setup | start [--ui]`: the production Temporal server on PostgreSQL (README,
 * "Production Temporal"). `setup` creates the role, the databases and their schemas; `start` writes the
 * server's config, runs the server, gives Docket its namespace (retention, search attributes) and,
 * with --ui, runs the Web UI against it. Ctrl-C stops what it started.
 */
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { z } from 'zod';
import { loadConfig } from '../core/config';
import { describeIssues } from '../core/engine-manifest';
import { createLogger } from '../infra/log';
import { temporalTarget } from '../system/temporal-connection';
import {
  DEFAULT_SERVER_BIN, DEFAULT_UI_BIN, portsFrom, prepareNamespace, setupDatabases, startServer, startUi,
  type RunningServer, type ServerSettings,
} from '../system/temporal-server';

const port = z.coerce.number().int().min(1).max(65535);
const Settings = z.object({
  DOCKET_TEMPORAL_DIR: z.string().default('data/temporal-server'),
  DOCKET_TEMPORAL_BIN: z.string().default(DEFAULT_SERVER_BIN),
  DOCKET_TEMPORAL_UI_BIN: z.string().default(DEFAULT_UI_BIN),
  DOCKET_TEMPORAL_BIND: z.string().default('127.0.0.1'),
  DOCKET_TEMPORAL_SHARDS: z.coerce.number().int().min(1).default(4),
  DOCKET_TEMPORAL_DB_HOST: z.string().default('127.0.0.1'),
  DOCKET_TEMPORAL_DB_PORT: port.default(5432),
  DOCKET_TEMPORAL_DB_USER: z.string().default('temporal'),
  DOCKET_TEMPORAL_DB_PASSWORD: z.string({ error: 'DOCKET_TEMPORAL_DB_PASSWORD is required: the password of the role the server connects as' }).min(1),
  DOCKET_TEMPORAL_DB_ADMIN: z.string().default('postgres'),
  DOCKET_TEMPORAL_TLS_CERT: z.string().optional(),
  DOCKET_TEMPORAL_TLS_KEY: z.string().optional(),
  DOCKET_TEMPORAL_TLS_CLIENT_CA: z.string().optional(),
});

const USAGE = 'usage: npm run temporal -- setup | start [--ui]';

function serverSettings(env: NodeJS.ProcessEnv, frontendPort: number): ServerSettings {
  const defined = Object.fromEntries(Object.entries(env).filter(([, value]) => value));
  const parsed = Settings.safeParse(defined);
  if (!parsed.success) throw new Error(`invalid Temporal server settings: ${describeIssues(parsed.error)}`);
  const s = parsed.data;
  const tlsParts = [s.DOCKET_TEMPORAL_TLS_CERT, s.DOCKET_TEMPORAL_TLS_KEY, s.DOCKET_TEMPORAL_TLS_CLIENT_CA];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean)) {
    throw new Error('mTLS needs all three of DOCKET_TEMPORAL_TLS_CERT, DOCKET_TEMPORAL_TLS_KEY and DOCKET_TEMPORAL_TLS_CLIENT_CA');
  }
  return {
    dir: resolve(s.DOCKET_TEMPORAL_DIR),
    binDir: s.DOCKET_TEMPORAL_BIN,
    bindIp: s.DOCKET_TEMPORAL_BIND,
    ports: portsFrom(frontendPort),
    historyShards: s.DOCKET_TEMPORAL_SHARDS,
    postgres: {
      host: s.DOCKET_TEMPORAL_DB_HOST, port: s.DOCKET_TEMPORAL_DB_PORT, user: s.DOCKET_TEMPORAL_DB_USER,
      password: s.DOCKET_TEMPORAL_DB_PASSWORD, adminUser: s.DOCKET_TEMPORAL_DB_ADMIN,
      database: 'temporal', visibilityDatabase: 'temporal_visibility',
    },
    tls: s.DOCKET_TEMPORAL_TLS_CERT
      ? { certFile: resolve(s.DOCKET_TEMPORAL_TLS_CERT), keyFile: resolve(s.DOCKET_TEMPORAL_TLS_KEY!), clientCaFile: resolve(s.DOCKET_TEMPORAL_TLS_CLIENT_CA!) }
      : undefined,
  };
}

async function main(): Promise<void> {
  const [command, ...flags] = process.argv.slice(2);
  if (command !== 'setup' && command !== 'start') throw new Error(USAGE);
  const config = loadConfig(process.env);
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  const settings = serverSettings(process.env, config.DOCKET_TEMPORAL_PORT);
  const started = Date.now();
  const took = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

  if (command === 'setup') {
    await setupDatabases(settings, log);
    log.info(`temporal: databases ready in ${took()}; next: npm run temporal -- start`);
    return;
  }
  // Docket's own connection settings (TEMPORAL_ADDRESS, TEMPORAL_TLS_*) reach the server this starts.
  const target = temporalTarget({ ...config, temporalAddress: `127.0.0.1:${settings.ports.frontend}` }, process.env);
  log.info(`temporal: starting the server on ${settings.bindIp}:${settings.ports.frontend} (config ${join(settings.dir, 'config', 'docket.yaml')})`);
  const running: RunningServer[] = [await startServer(settings, target)];
  const connection = await Connection.connect(target.connection);
  try {
    await prepareNamespace(connection, config.TEMPORAL_NAMESPACE, config.retentionMs, log);
  } finally {
    await connection.close();
  }
  log.info(`temporal: server ready in ${took()}; namespace ${config.TEMPORAL_NAMESPACE}, retention ${config.DOCKET_RETENTION}`);
  if (flags.includes('--ui')) {
    const tls = settings.tls && process.env.TEMPORAL_TLS_CLIENT_CERT_PATH && process.env.TEMPORAL_TLS_CLIENT_KEY_PATH
      ? { caFile: settings.tls.clientCaFile, certFile: process.env.TEMPORAL_TLS_CLIENT_CERT_PATH, keyFile: process.env.TEMPORAL_TLS_CLIENT_KEY_PATH }
      : undefined;
    running.push(startUi({
      binary: process.env.DOCKET_TEMPORAL_UI_BIN ?? DEFAULT_UI_BIN, ip: '127.0.0.1', port: config.DOCKET_TEMPORAL_UI_PORT,
      temporalAddress: target.connection.address, tls, dir: settings.dir,
    }));
    log.info(`temporal: Web UI on http://127.0.0.1:${config.DOCKET_TEMPORAL_UI_PORT}`);
  }
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const child of running.reverse()) await child.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  running[0].process.on('exit', (code, signal) => {
    if (stopping) return;
    log.error(`temporal: the server ended (${signal ?? code}); see ${running[0].logFile}`);
    process.exit(1);
  });
}

main().catch((error) => {
  console.error(`temporal: ${(error as Error).message}`);
  process.exit(1);
});
