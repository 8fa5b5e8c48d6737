/**
 * `npm start`: provisions what is missing, then runs all of Docket on this machine — a Temporal dev
 * server (SQLite under data/, Web UI on 8233) unless TEMPORAL_ADDRESS names a cluster, the main
 * worker, one engine worker per engine, and the gateway on port 8100. Ctrl-C stops everything.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createLogger } from '../activities/log';
import { ConfigError, loadConfig } from '../core/config';
import { type DevServer, startDevServer } from './lib/temporal-dev';
import { startSystem } from './lib/system';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  mkdirSync(config.DOCKET_DATA_DIR, { recursive: true });

  if (process.env.DOCKET_SKIP_PROVISION !== '1') {
    const steps = ['docker', 'base', 'engines', ...(config.TEMPORAL_ADDRESS ? [] : ['temporal'])];
    const provision = spawnSync('bash', [join(__dirname, 'provision.sh'), ...steps], { stdio: 'inherit' });
    if (provision.status !== 0) throw new Error('provisioning failed (see above); fix it and run npm start again');
  }

  let temporal: DevServer | undefined;
  if (!config.TEMPORAL_ADDRESS) {
    const dbFile = resolve(config.DOCKET_DATA_DIR, 'temporal.db');
    log.info(`temporal: starting the dev server (${dbFile}), Web UI on ${config.temporalUiUrl}`);
    temporal = await startDevServer({
      port: config.DOCKET_TEMPORAL_PORT,
      uiPort: config.DOCKET_TEMPORAL_UI_PORT,
      dbFile,
      logFile: resolve(config.DOCKET_DATA_DIR, 'temporal.log'),
      namespace: config.TEMPORAL_NAMESPACE,
    });
  }

  let system;
  try {
    system = await startSystem({ config, log });
  } catch (error) {
    await temporal?.stop();
    throw error;
  }
  const url = system.url!.replace('127.0.0.1', 'localhost');
  log.info(`docket: gateway on ${url}; engines: ${system.registry.names().join(', ')}; Temporal Web UI: ${config.temporalUiUrl}`);
  log.info(`docket: try  curl -F upload=@README.md ${url}/fileinfo/upload   then   curl ${url}/result/<jobid>`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`docket: ${signal}, stopping`);
    const force = setTimeout(() => process.exit(1), 20_000);
    await system.stop().catch((error) => log.error(`docket: ${(error as Error).message}`));
    await temporal?.stop();
    clearTimeout(force);
    log.info('docket: stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void system.reload().catch((error) => log.error(`engines: reload failed: ${(error as Error).message}`)));
}

main().catch((error) => {
  const message = error instanceof ConfigError ? error.message : (error as Error).message;
  console.error(`docket: ${message}`);
  process.exit(1);
});
