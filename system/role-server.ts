import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { System } from './start-system';

/**
 * The worker and engines roles' own small HTTP listener, so each role of a deployment is probed and
 * scraped where it runs (the gateway serves the same three paths on its own port):
 *
 * - `/healthz`: the process answers (restart it when it does not);
 * - `/readyz`: Temporal answers and every Temporal worker of this process is RUNNING, and for the
 *   engines role the engine runners (Docker) answer too; 200 or 503, with one check each;
 * - `/metrics`: this process's own Prometheus registry (the engines role's holds the engine job counters).
 *
 * Plain `node:http`: three read-only paths need no framework, and a role that runs no gateway should
 * not load one. It listens on loopback unless told otherwise, and has no authentication: bind it to an
 * address only the probes and Prometheus reach.
 */
export interface RoleServerOptions {
  role: 'worker' | 'engines';
  system: Pick<System, 'client' | 'runners' | 'metrics' | 'workerStates'>;
  host: string;
  port: number;
  /** How long one readiness check may take before it counts as failed. */
  checkTimeoutMs?: number;
}

export interface RoleServer {
  url: string;
  close(): Promise<void>;
}

interface Check {
  ok: boolean;
  message: string;
}

const PATHS = '/healthz, /readyz and /metrics';

export async function startRoleServer(options: RoleServerOptions): Promise<RoleServer> {
  const server = createServer((request, response) => {
    answer(options, request, response).catch((error) => {
      if (!response.headersSent) send(response, 500, { error: { code: 'internal', message: `the ${options.role} role could not answer: ${(error as Error).message}` } });
      else response.destroy();
    });
  });
  // Probes send small requests; nothing here should hold a socket open for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await listen(server, options);
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function listen(server: Server, options: RoleServerOptions): Promise<void> {
  const setting = options.role === 'worker' ? 'DOCKET_WORKER_PORT' : 'DOCKET_ENGINES_PORT';
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'is already in use' : `cannot be opened (${error.message})`;
      reject(new Error(`the ${options.role} role's health and metrics port ${options.host}:${options.port} ${why}: set ${setting} to a free port, or to 0 to turn the listener off`));
    });
    server.listen(options.port, options.host, () => resolve());
  });
}

async function answer(options: RoleServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') {
    send(response, 404, { error: { code: 'not_found', message: `the ${options.role} role serves only ${PATHS}; the API is on the gateway` } });
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    send(response, 405, { error: { code: 'method_not_allowed', message: `${path} answers GET only` } });
    return;
  }
  if (path === '/healthz') {
    send(response, 200, { status: 'ok', role: options.role });
    return;
  }
  if (path === '/metrics') {
    const { registry } = options.system.metrics;
    response.writeHead(200, { 'content-type': registry.contentType });
    response.end(request.method === 'HEAD' ? undefined : await registry.metrics());
    return;
  }
  const checks = await readiness(options);
  const ready = Object.values(checks).every((check) => check.ok);
  send(response, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', role: options.role, checks });
}

async function readiness(options: RoleServerOptions): Promise<Record<string, Check>> {
  const timeoutMs = options.checkTimeoutMs ?? 3000;
  const { client, runners } = options.system;
  const probes: Array<Promise<[string, Check]>> = [
    probe('temporal', timeoutMs, 'Temporal', async () => {
      await client.connection.withDeadline(Date.now() + timeoutMs, () => client.workflowService.getSystemInfo({}));
      return 'Temporal answers';
    }),
  ];
  if (options.role === 'engines') {
    for (const runner of runners.list()) probes.push(probe(runner.kind, timeoutMs, runner.title, () => runner.health()));
  }
  const checks: Record<string, Check> = { workers: workersCheck(options) };
  for (const [name, check] of await Promise.all(probes)) checks[name] = check;
  return checks;
}

function workersCheck(options: RoleServerOptions): Check {
  const states = options.system.workerStates();
  if (!states.length) {
    const what = options.role === 'engines' ? 'no engine worker runs: no engine is loaded, or DOCKET_ENGINES names none that is' : 'the main worker is not running';
    return { ok: false, message: what };
  }
  const stopped = states.filter((one) => one.state !== 'RUNNING');
  if (stopped.length) return { ok: false, message: `not polling: ${stopped.map((one) => `${one.worker} (${one.state})`).join(', ')}` };
  return { ok: true, message: `${states.length} Temporal worker(s) running: ${states.map((one) => one.worker).join(', ')}` };
}

async function probe(name: string, timeoutMs: number, what: string, run: () => Promise<string>): Promise<[string, Check]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return [name, { ok: true, message: await Promise.race([run(), timeout]) }];
  } catch (error) {
    return [name, { ok: false, message: `cannot reach ${what}: ${(error as Error).message.split('\n')[0]}` }];
  } finally {
    clearTimeout(timer);
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}
