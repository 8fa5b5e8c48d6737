/**
 * `npm start`: provisions what is missing (the engine images while the rest starts) and runs all of
 * Docket on this machine under a supervisor (system/supervisor.ts): a Temporal dev server (SQLite
 * under data/, Web UI on 8233) unless TEMPORAL_ADDRESS names a cluster, and each role — main worker,
 * engine workers, gateway on port 8100 — as its own child process (`docket <role>`, bin/docket),
 * restarted when it crashes; the worker and engines roles serve /healthz, /readyz and /metrics on
 * DOCKET_WORKER_PORT and DOCKET_ENGINES_PORT. Ctrl-C stops everything.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import Docker from 'dockerode';
import { createLogger, type Logger } from '../infra/log';
import { type Config, loadConfig } from '../core/config';
import { PRIVATE_UMASK, secureDataDir } from '../system/data-dir';
import { docketCommand, Supervisor, tetherCommand } from '../system/supervisor';
import { AWAIT_TEMPORAL_ENV, devServerCommand, findTemporalCli, portIsFree, waitForTemporal } from '../system/temporal-dev';
import { BASE_IMAGE, buildEngineImages, localImages } from './lib/engine-images';

const ROLES = ['worker', 'engines', 'gateway'];
/** provision.sh runs still going (the temporal step builds beside the rest): a stop ends them too. */
const provisioning = new Set<ChildProcess>();

async function main(): Promise<void> {
  process.umask(PRIVATE_UMASK);
  const config = loadConfig(process.env);
  const log = createLogger(config.DOCKET_LOG_LEVEL);
  await secureDataDir(config.DOCKET_DATA_DIR, (message) => log.warn(message));

  const provision = process.env.DOCKET_SKIP_PROVISION !== '1';
  const provisionStarted = Date.now();
  // The Temporal CLI's build (minutes of Go when cold) first, Docker and the base image beside it; the
  // engine images then build while the CLI may still be building: only the dev server waits for the CLI.
  const { cli } = provision ? await provisionTools(config) : { cli: Promise.resolve() };

  // Fail now, naming the port, rather than let a child die on it over and over, or talk to a stale server.
  if (!config.TEMPORAL_ADDRESS) {
    await refuseHeldPort(config.DOCKET_TEMPORAL_PORT, 'DOCKET_TEMPORAL_PORT', 'the Temporal dev server');
    await refuseHeldPort(config.DOCKET_TEMPORAL_UI_PORT, 'DOCKET_TEMPORAL_UI_PORT', 'the Temporal Web UI');
  }
  if (config.DOCKET_PORT !== 0) await refuseHeldPort(config.DOCKET_PORT, 'DOCKET_PORT', 'the gateway', config.DOCKET_HOST);
  const rolePorts = new Map([['worker', config.DOCKET_WORKER_PORT], ['engines', config.DOCKET_ENGINES_PORT]]);
  for (const [role, port] of rolePorts) {
    const setting = role === 'worker' ? 'DOCKET_WORKER_PORT' : 'DOCKET_ENGINES_PORT';
    if (port !== 0) await refuseHeldPort(port, setting, `the ${role} role's health and metrics`, config.DOCKET_ROLE_HOST);
  }

  const waiting = new Set(ROLES);
  const supervisor = new Supervisor({
    log,
    onReady: (name) => {
      if (!waiting.delete(name) || waiting.size) return;
      const url = `http://localhost:${config.DOCKET_PORT}`;
      log.info(`docket: running; gateway on ${url}, Temporal Web UI on ${config.temporalUiUrl}`);
      const probes = [...rolePorts].map(([role, port]) => `${role} ${port ? `http://${config.DOCKET_ROLE_HOST}:${port}` : 'off'}`).join(', ');
      log.info(`docket: /healthz, /readyz and /metrics: gateway ${url}, ${probes}`);
      log.info(`docket: try  curl -F upload=@README.md ${url}/fileinfo/upload   then   curl ${url}/result/<jobid>`);
    },
  });
  log.info(`supervisor: launcher pid ${process.pid}`);

  let stopping = false;
  const stop = async (why: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    log.info(`docket: ${why}, stopping`);
    endProvisioning();
    await supervisor.stop();
    log.info('docket: stopped');
    process.exit(exitCode);
  };
  process.on('SIGINT', () => void stop('SIGINT', 0));
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  process.on('SIGHUP', () => supervisor.reload());

  // The engine images are checked (and what changed is built) while the dev server and the other roles
  // start: only the engines role, which runs them, waits for that.
  const images = provision ? engineImages(config, log, provisionStarted, cli) : Promise.resolve();
  images.catch((error: Error) => void stop(error.message, 1));

  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!config.TEMPORAL_ADDRESS) {
    const logFile = resolve(config.DOCKET_DATA_DIR, 'temporal.log');
    try {
      await cli;
    } catch (error) {
      await stop((error as Error).message, 1);
      return;
    }
    const server = devServerCommand({
      port: config.DOCKET_TEMPORAL_PORT,
      uiPort: config.DOCKET_TEMPORAL_UI_PORT,
      dbFile: resolve(config.DOCKET_DATA_DIR, 'temporal.db'),
      namespace: config.TEMPORAL_NAMESPACE,
    });
    log.info(`temporal: starting the dev server (${resolve(config.DOCKET_DATA_DIR, 'temporal.db')}), Web UI on ${config.temporalUiUrl}`);
    supervisor.add({ name: 'temporal', ...tetherCommand([server.command, ...server.args]), logFile, tier: 0 });
    // The roles load their code while the server starts (most of a role's start), then wait for it to answer.
    env.TEMPORAL_ADDRESS = config.temporalAddress;
    env[AWAIT_TEMPORAL_ENV] = '1';
    addRoles(supervisor, env, images);
    try {
      await waitForTemporal(config.temporalAddress, () => {
        const status = supervisor.status('temporal');
        return status.exits ? `ended with ${status.lastExit} before it answered; see ${logFile}` : undefined;
      });
    } catch (error) {
      await stop(`the Temporal dev server did not start: ${(error as Error).message}`, 1);
      return;
    }
    log.info('temporal: the dev server answers');
    return;
  }
  addRoles(supervisor, env, images);
}

function addRoles(supervisor: Supervisor, env: NodeJS.ProcessEnv, images: Promise<void>): void {
  for (const role of ROLES) {
    const add = () => supervisor.add({ name: role, ...docketCommand([role]), env, reload: true });
    if (role === 'engines') images.then(add, () => undefined);
    else add();
  }
}

/**
 * What provision.sh's docker, base and temporal steps make sure of. When Docker answers, the base
 * image is there and the Temporal CLI is found, the script (a shell, a docker CLI call per check) is
 * not run at all. Otherwise the temporal step (building the CLI when it is missing: minutes of Go, and
 * all the dev server, so the gateway, waits for) starts first and is returned, to go on while the
 * engine images build; the docker and base steps run beside it (debootstrap at a lower CPU priority).
 */
async function provisionTools(config: Config): Promise<{ cli: Promise<void> }> {
  const docker = new Docker();
  const cli = !config.TEMPORAL_ADDRESS && !cliFound() ? provisionSteps(['temporal']) : Promise.resolve();
  cli.catch(() => undefined);
  try {
    if (!(await dockerAndBaseReady(docker))) await provisionSteps(['docker', 'base']);
  } catch (error) {
    endProvisioning(); // the launcher exits: the CLI's build must not go on without it
    throw error;
  }
  // Wrapped: an async function's returned promise would be awaited with it.
  return { cli };
}

/** Stops the provision.sh runs still going (each stops its own background Go build as it exits). */
function endProvisioning(): void {
  for (const child of provisioning) child.kill('SIGTERM');
}

/** Runs provision.sh with `steps`, its output on the launcher's; rejects, saying what to do, when it fails. */
function provisionSteps(steps: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const script = spawn('bash', [join(__dirname, 'provision.sh'), ...steps], { stdio: ['ignore', 'inherit', 'inherit'] });
    provisioning.add(script);
    script.on('error', (error) => reject(new Error(`provisioning (${steps.join(' ')}) could not start: ${error.message}`)));
    script.on('exit', (code, signal) => {
      provisioning.delete(script);
      if (code === 0) resolve();
      else reject(new Error(`provisioning (${steps.join(' ')}) failed (${signal ?? `exit ${code}`}; see above); fix it and run npm start again`));
    });
  });
}

/**
 * provision.sh's engines step: one list of the local images (scripts/lib/engine-images.ts), and only what
 * changed is built, while the Temporal CLI (`cli`) may still be building; provisioning is done once both are.
 */
async function engineImages(config: Config, log: Logger, started: number, cli: Promise<void>): Promise<void> {
  const failed = await buildEngineImages({ enginesDir: config.DOCKET_ENGINES_DIR, docker: new Docker() });
  if (failed) throw new Error(`provisioning failed: ${failed} engine image(s) did not build (see above); fix them and run npm start again`);
  await cli;
  log.info(`provision: done in ${((Date.now() - started) / 1000).toFixed(1)}s (docker base${config.TEMPORAL_ADDRESS ? '' : ' temporal'} engines)`);
}

/** Docker answers and holds the base image. */
async function dockerAndBaseReady(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return (await localImages(docker)).has(BASE_IMAGE);
  } catch {
    return false;
  }
}

function cliFound(): boolean {
  try {
    findTemporalCli();
    return true;
  } catch {
    return false;
  }
}

async function refuseHeldPort(port: number, setting: string, what: string, host = '127.0.0.1'): Promise<void> {
  if (await portIsFree(port, host)) return;
  const cluster = setting === 'DOCKET_TEMPORAL_PORT' ? `, or set TEMPORAL_ADDRESS=127.0.0.1:${port} to use that server as your Temporal cluster` : '';
  throw new Error(
    `port ${port} on ${host} (${setting}, for ${what}) is already in use: by a Temporal dev server an earlier Docket left running, or by another program. `
    + `Find the process holding it with  ss -ltnp 'sport = :${port}'  and stop it, or set ${setting} to a free port${cluster}.`,
  );
}

main().catch((error) => {
  console.error(`docket: ${(error as Error).message}`);
  process.exit(1);
});
