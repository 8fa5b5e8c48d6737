/**
 * Runs one of Docket's processes against an existing Temporal cluster (TEMPORAL_ADDRESS), for
 * deployments that scale each part separately: `tsx scripts/run.ts gateway|worker|engines|all`.
 * Add engine workers on more hosts to scale out; DOCKET_ENGINES limits which engines a host serves.
 */
import { createLogger } from '../activities/log';
import { loadConfig } from '../core/config';
import { startSystem } from './lib/system';

const ROLES = {
  gateway: { gateway: true, mainWorker: false, engineWorkers: false },
  worker: { gateway: false, mainWorker: true, engineWorkers: false },
  engines: { gateway: false, mainWorker: false, engineWorkers: true },
  all: { gateway: true, mainWorker: true, engineWorkers: true },
} as const;

async function main(): Promise<void> {
  const role = process.argv[2] as keyof typeof ROLES;
  if (!ROLES[role]) throw new Error(`say which process to run: ${Object.keys(ROLES).join(', ')}`);
  const config = loadConfig(process.env);
  if (!config.TEMPORAL_ADDRESS) throw new Error('set TEMPORAL_ADDRESS to the Temporal frontend (host:7233); npm start runs a dev server instead');
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  const system = await startSystem({ config, log, ...ROLES[role] });
  log.info(`docket ${role}: running against ${config.temporalAddress}${system.url ? `, gateway on ${system.url}` : ''}${system.engineWorkers ? `, engines ${system.engineWorkers.engines().join(', ')}` : ''}`);
  const stop = async () => {
    await system.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGHUP', () => void system.reload());
}

main().catch((error) => {
  console.error(`docket: ${(error as Error).message}`);
  process.exit(1);
});
