import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../system/temporal-dev';
import { docker } from './engines';

const run = promisify(execFile);

/** moto 5 serves every AWS API from one port; pinned to one major version so its behaviour stays put. */
const MOTO_REQUIREMENT = 'moto[server]>=5.0,<6';
const START_LIMIT_MS = 60_000;

/** A virtualenv kept across runs, so only the first run on a machine waits for pip. */
export function motoVenv(): string {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'docket', 'moto-venv');
}

/** Installs moto's server (and boto3, which it depends on) into the cached virtualenv when missing. */
export async function ensureMoto(): Promise<string> {
  const venv = motoVenv();
  const server = join(venv, 'bin', 'moto_server');
  if (existsSync(server)) return venv;
  mkdirSync(join(venv, '..'), { recursive: true });
  await run('python3', ['-m', 'venv', venv]);
  await run(join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', MOTO_REQUIREMENT], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
  if (!existsSync(server)) throw new Error(`pip installed ${MOTO_REQUIREMENT} into ${venv} but there is no ${server}`);
  return venv;
}

export interface AwsEmulator {
  /** The Docker network the test created; bot containers join it and reach the emulator only there. */
  network: string;
  /** The emulator's URL, on that network's gateway address. */
  endpoint: string;
  /** Runs Python with boto3 against the emulator and returns what it printed as JSON. */
  python(script: string): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * moto's server on the gateway address of a user-defined bridge network this function creates: the
 * test (on the host) and containers on that network reach it, nothing else does, and no other
 * address is ever contacted.
 */
export async function startAwsEmulator(): Promise<AwsEmulator> {
  const venv = await ensureMoto();
  const name = `docket-aws-test-${randomBytes(4).toString('hex')}`;
  const network = await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { 'docket.test': 'aws-emulator' } });
  let server: ChildProcess | undefined;
  try {
    const info = await network.inspect();
    const gateway: string | undefined = info.IPAM?.Config?.[0]?.Gateway;
    if (!gateway) throw new Error(`Docker gave network ${name} no gateway address: ${JSON.stringify(info.IPAM)}`);
    const port = await freePort();
    const endpoint = `http://${gateway}:${port}`;
    server = spawn(join(venv, 'bin', 'moto_server'), ['-H', gateway, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr?.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
    await waitUntilServing(endpoint, server, () => stderr);
    const child = server;
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_DEFAULT_REGION: 'us-east-1', MOTO_ENDPOINT: endpoint };
    return {
      network: name,
      endpoint,
      async python(script: string) {
        const { stdout } = await run(join(venv, 'bin', 'python'), ['-c', script], { env, timeout: 60_000 });
        return JSON.parse(stdout);
      },
      async close() {
        await stop(child);
        await network.remove().catch(() => undefined);
      },
    };
  } catch (error) {
    if (server) await stop(server);
    await network.remove().catch(() => undefined);
    throw error;
  }
}

async function waitUntilServing(endpoint: string, server: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_LIMIT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`moto_server exited with code ${server.exitCode}: ${stderr()}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within ${START_LIMIT_MS / 1000}s: ${stderr()}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
