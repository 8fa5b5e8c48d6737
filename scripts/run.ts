/**
 * Runs one of Docket's processes against a Temporal server (TEMPORAL_ADDRESS): `docket gateway|worker|
 * engines [names]|all` (bin/docket, which runs this file compiled: system/compile.ts). `npm start` runs each role through bin/docket
 * under its supervisor; deployments that scale each part separately run it directly (compose, systemd).
 * Add engine workers on more hosts to scale out; their names (or DOCKET_ENGINES) limit which engines a
 * host serves. The worker and engines roles serve /healthz, /readyz and /metrics on a port of their own.
 */
import { createLogger } from '../infra/log';
import { type Config, ConfigError, loadConfig } from '../core/config';
import type { RoleServer } from '../system/role-server';
import { PRIVATE_UMASK, secureDataDir } from '../system/data-dir';
import type { System } from '../system/start-system';

/**
 * What a role runs, loaded only by a role: most of a process's start is loading it (seconds of CPU),
 * which `docket start`, the launcher, does not need. A role starts loading it before it waits for Temporal.
 */
function loadRole() {
  return Promise.all([import('../system/start-system'), import('../system/role-server'), import('../system/temporal-dev')]);
}

const ROLES = new Map([
  ['gateway', { gateway: true, mainWorker: false, engineWorkers: false }],
  ['worker', { gateway: false, mainWorker: true, engineWorkers: false }],
  ['engines', { gateway: false, mainWorker: false, engineWorkers: true }],
  ['all', { gateway: true, mainWorker: true, engineWorkers: true }],
]);

/** How long a role may take to stop once its supervisor is gone (nobody else will SIGKILL it). */
const ORPHAN_GRACE_MS = 15_000;

const USAGE = `usage: docket <role> [engine names]

  docket start              all of Docket on this machine (npm start): a Temporal dev server unless
                            TEMPORAL_ADDRESS is set, and each role below as a supervised child process
  docket gateway            the HTTP API on DOCKET_HOST:DOCKET_PORT (/healthz, /readyz, /metrics there)
  docket worker             the main worker: workflows, planning, notifications, schedules
                            (/healthz, /readyz, /metrics on DOCKET_ROLE_HOST:DOCKET_WORKER_PORT)
  docket engines [names]    engine workers for every engine, or for the names given (fileinfo,yara),
                            as DOCKET_ENGINES does (/healthz, /readyz, /metrics on DOCKET_ENGINES_PORT);
                            containers run on the Docker engine DOCKER_HOST names
  docket all                gateway, main worker and engine workers in one process
  docket compile            compile Docket's TypeScript into its cache under node_modules now and exit
                            (every start does it when the sources changed; an image build runs it once)

Every role but start needs TEMPORAL_ADDRESS. Settings come from the environment (README, "Configuration").`;

/** Exit code for a command line Docket cannot run, as for any misused command. */
const USAGE_EXIT = 2;

async function main(): Promise<void> {
  process.umask(PRIVATE_UMASK);
  const [role = '', ...rest] = process.argv.slice(2);
  if (['--help', '-h', 'help'].includes(role) || rest.some((arg) => arg === '--help' || arg === '-h')) {
    console.log(USAGE);
    return;
  }
  if (role === 'start' && !rest.length) {
    // The launcher (npm start) runs on loading; it reads its settings from the environment.
    await import('./start');
    return;
  }
  const parts = ROLES.get(role);
  if (!parts || (rest.length && role !== 'engines')) {
    // bin/docket runs `compile` itself; it reaches here only with arguments.
    const known = parts || role === 'start' || role === 'compile';
    const why = !role ? 'say which role to run' : known ? `${role} takes no arguments (got ${rest.join(' ')})` : `unknown role ${JSON.stringify(role)}`;
    console.error(`docket: ${why}\n\n${USAGE}`);
    process.exit(USAGE_EXIT);
  }
  const loading = loadRole();
  // A role that stops on a bad command line before it waits for the modules must not leave the load unhandled.
  loading.catch(() => undefined);
  const names = rest.flatMap((arg) => arg.split(',')).map((name) => name.trim()).filter(Boolean);
  // Names on the command line stand in for DOCKET_ENGINES, so a unit or a compose service names its engines where it runs them.
  const config = loadConfig(names.length ? { ...process.env, DOCKET_ENGINES: names.join(',') } : process.env);
  if (parts.engineWorkers) await refuseUnknownEngines(config);
  if (!config.TEMPORAL_ADDRESS) throw new Error('set TEMPORAL_ADDRESS to the Temporal frontend (host:7233); npm start runs a dev server instead');
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  await secureDataDir(config.DOCKET_DATA_DIR, (message) => log.warn(message));

  let system: System | undefined;
  let roleServer: RoleServer | undefined;
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`docket ${role}: ${why}, stopping`);
    setTimeout(() => process.exit(1), ORPHAN_GRACE_MS).unref();
    await roleServer?.close();
    await system?.stop().catch((error) => log.error(`docket ${role}: ${(error as Error).message}`));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void system?.reload().catch((error) => log.error(`engines: reload failed: ${(error as Error).message}`)));
  // Started by the supervisor: its IPC channel closes when it dies, however it dies, and a role must not outlive it.
  if (process.connected) process.on('disconnect', () => void stop('the supervisor is gone'));

  const [{ startSystem }, { startRoleServer }, { AWAIT_TEMPORAL_ENV, waitForTemporal }] = await loading;
  if (process.env[AWAIT_TEMPORAL_ENV] === '1') {
    await waitForTemporal(config.temporalAddress, () => (stopping ? 'is no longer awaited: this role is stopping' : undefined));
    if (stopping) return;
  }
  system = await startSystem({ config, log, ...parts });
  if (stopping) return;
  const port = role === 'worker' ? config.DOCKET_WORKER_PORT : role === 'engines' ? config.DOCKET_ENGINES_PORT : 0;
  if (port !== 0 && (role === 'worker' || role === 'engines')) {
    roleServer = await startRoleServer({ role, system, host: config.DOCKET_ROLE_HOST, port }).catch(async (error) => {
      await system?.stop().catch(() => undefined);
      throw error;
    });
  }
  log.info(`docket ${role}: running against ${config.temporalAddress}${system.url ? `, gateway on ${system.url}` : ''}${system.engineWorkers ? `, engines ${system.engineWorkers.engines().join(', ')}` : ''}${roleServer ? `, health and metrics on ${roleServer.url}` : ''}`);
  if (process.connected) process.send?.({ docket: 'ready' });
}

/** An engine name that matches no manifest would leave a host polling nothing, silently: refuse it at start. */
async function refuseUnknownEngines(config: Config): Promise<void> {
  if (!config.engineFilter.length) return;
  const { EngineRegistry } = await import('../infra/engine-registry');
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  const unknown = config.engineFilter.filter((name) => !registry.get(name));
  if (!unknown.length) return;
  const loaded = registry.names().join(', ') || 'none';
  const skipped = registry.errors.length ? `; skipped manifests: ${registry.errors.join('; ')}` : '';
  console.error(`docket: no engine named ${unknown.join(', ')} in ${config.DOCKET_ENGINES_DIR} (loaded: ${loaded}${skipped}); name engines from that folder, comma-separated`);
  process.exit(USAGE_EXIT);
}

main().catch((error) => {
  const message = error instanceof ConfigError ? error.message : (error as Error).message;
  console.error(`docket: ${message}`);
  process.exit(1);
});
