/**
 * Runs one of Docket's processes against a Temporal server (TEMPORAL_ADDRESS):
 * `tsx scripts/run.ts gateway|worker|engines|all`. `npm start` runs each role through this under its
 * supervisor; deployments that scale each part separately run it directly (compose, systemd). Add
 * engine workers on more hosts to scale out; DOCKET_ENGINES limits which engines a host serves.
 */
import { createLogger } from '../infra/log';
import { ConfigError, loadConfig } from '../core/config';
import { PRIVATE_UMASK, secureDataDir } from '../system/data-dir';
import { startSystem, type System } from '../system/start-system';

const ROLES = new Map([
  ['gateway', { gateway: true, mainWorker: false, engineWorkers: false }],
  ['worker', { gateway: false, mainWorker: true, engineWorkers: false }],
  ['engines', { gateway: false, mainWorker: false, engineWorkers: true }],
  ['all', { gateway: true, mainWorker: true, engineWorkers: true }],
]);

/** How long a role may take to stop once its supervisor is gone (nobody else will SIGKILL it). */
const ORPHAN_GRACE_MS = 15_000;

async function main(): Promise<void> {
  process.umask(PRIVATE_UMASK);
  const role = process.argv[2] ?? '';
  const parts = ROLES.get(role);
  if (!parts) throw new Error(`say which process to run: ${[...ROLES.keys()].join(', ')}`);
  const config = loadConfig(process.env);
  if (!config.TEMPORAL_ADDRESS) throw new Error('set TEMPORAL_ADDRESS to the Temporal frontend (host:7233); npm start runs a dev server instead');
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  await secureDataDir(config.DOCKET_DATA_DIR, (message) => log.warn(message));

  let system: System | undefined;
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`docket ${role}: ${why}, stopping`);
    setTimeout(() => process.exit(1), ORPHAN_GRACE_MS).unref();
    await system?.stop().catch((error) => log.error(`docket ${role}: ${(error as Error).message}`));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void system?.reload().catch((error) => log.error(`engines: reload failed: ${(error as Error).message}`)));
  // Started by the supervisor: its IPC channel closes when it dies, however it dies, and a role must not outlive it.
  if (process.connected) process.on('disconnect', () => void stop('the supervisor is gone'));

  system = await startSystem({ config, log, ...parts });
  if (stopping) return;
  log.info(`docket ${role}: running against ${config.temporalAddress}${system.url ? `, gateway on ${system.url}` : ''}${system.engineWorkers ? `, engines ${system.engineWorkers.engines().join(', ')}` : ''}`);
  if (process.connected) process.send?.({ docket: 'ready' });
}

main().catch((error) => {
  const message = error instanceof ConfigError ? error.message : (error as Error).message;
  console.error(`docket: ${message}`);
  process.exit(1);
});
