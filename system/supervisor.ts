import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../infra/log';
import { entryFile, runningBuild } from './compile';

/**
 * Runs each of Docket's processes as a child and keeps it running: a child that dies is logged (how
 * it ended, its last stderr lines) and started again after a delay that doubles up to a cap, and
 * returns to the first delay once the child has stayed up for a while. The others are untouched.
 *
 * Every child gets an IPC channel. When the supervisor dies, even by SIGKILL, the kernel closes that
 * channel and the child sees `disconnect`: Docket's roles stop on it (scripts/run.ts), and commands
 * that cannot watch it (the Temporal CLI) run under system/tether.ts, which does it for them.
 * This needs no prctl(PR_SET_PDEATHSIG), which Node cannot call, and works the same under any
 * service manager. Children get their own process group, so a terminal's Ctrl-C reaches only the
 * supervisor, which then stops them in order.
 */
export interface ServiceSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Where the child's output goes instead of the supervisor's own stdout and stderr (the dev server's chatter). */
  logFile?: string;
  /** Whether SIGHUP is passed on to it (the roles re-read their configuration; the dev server would stop). */
  reload?: boolean;
  /** Lower tiers stop last: the dev server (0) outlives the roles (1) that talk to it. */
  tier?: number;
}

export interface SupervisorOptions {
  log: Logger;
  /** First restart delay; it doubles after each quick crash. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A child that ran this long before dying is restarted after the first delay again. */
  healthyAfterMs?: number;
  /** How long a child may take to stop after SIGTERM before it gets SIGKILL. */
  graceMs?: number;
  /** Called each time a child says it is ready (`process.send({ docket: 'ready' })`). */
  onReady?: (name: string) => void;
}

export interface ServiceStatus {
  pid?: number;
  /** How many times it has ended so far. */
  exits: number;
  lastExit?: string;
}

const TAIL_BYTES = 8192;
const TAIL_LINES = 15;

class Service {
  child?: ChildProcess;
  startedAt = 0;
  delayMs: number;
  exits = 0;
  lastExit?: string;
  restartTimer?: NodeJS.Timeout;
  stopping = false;
  tail = '';
  output?: WriteStream;
  exited: Promise<void> = Promise.resolve();

  constructor(readonly spec: ServiceSpec, initialDelayMs: number) {
    this.delayMs = initialDelayMs;
  }
}

export class Supervisor {
  private readonly services = new Map<string, Service>();
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly healthyAfterMs: number;
  private readonly graceMs: number;
  private closed = false;

  constructor(private readonly options: SupervisorOptions) {
    this.initialDelayMs = options.initialDelayMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.healthyAfterMs = options.healthyAfterMs ?? 60_000;
    this.graceMs = options.graceMs ?? 15_000;
  }

  /** Starts a child and keeps it running until `stop`. */
  add(spec: ServiceSpec): void {
    if (this.closed) return;
    if (this.services.has(spec.name)) throw new Error(`supervisor: a service named ${spec.name} runs already`);
    const service = new Service(spec, this.initialDelayMs);
    if (spec.logFile) service.output = createWriteStream(spec.logFile, { flags: 'a', mode: 0o600 });
    this.services.set(spec.name, service);
    this.spawn(service);
  }

  status(name: string): ServiceStatus {
    const service = this.services.get(name);
    if (!service) return { exits: 0 };
    return { pid: service.child?.pid, exits: service.exits, lastExit: service.lastExit };
  }

  /** Passes SIGHUP on to the children that reload on it. */
  reload(): void {
    for (const service of this.services.values()) {
      if (service.spec.reload && service.child && service.child.exitCode === null) service.child.kill('SIGHUP');
    }
  }

  /** Stops every child, highest tier first, each tier at once; nothing is restarted after this. */
  async stop(): Promise<void> {
    this.closed = true;
    const tiers = [...new Set([...this.services.values()].map((service) => service.spec.tier ?? 1))].sort((a, b) => b - a);
    for (const tier of tiers) {
      const members = [...this.services.values()].filter((service) => (service.spec.tier ?? 1) === tier);
      await Promise.all(members.map((service) => this.stopService(service)));
    }
  }

  private spawn(service: Service): void {
    const { spec } = service;
    const { log } = this.options;
    const stdout = spec.logFile ? openSync(spec.logFile, 'a', 0o600) : 'inherit';
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, { env: spec.env ?? process.env, stdio: ['ignore', stdout, 'pipe', 'ipc'], detached: true });
    } finally {
      if (typeof stdout === 'number') closeSync(stdout);
    }
    service.child = child;
    service.startedAt = Date.now();
    service.tail = '';
    let ended = false;
    let markExited: () => void = () => undefined;
    service.exited = new Promise((resolve) => { markExited = resolve; });
    const end = (how: string) => {
      if (ended) return;
      ended = true;
      markExited();
      this.ended(service, child, how);
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      service.tail = (service.tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
      if (service.output) service.output.write(chunk);
      else process.stderr.write(chunk);
    });
    child.stderr?.on('error', () => undefined);
    child.on('message', (message: unknown) => this.message(service, child, message));
    child.on('exit', (code, signal) => end(signal ? `signal ${signal}` : `code ${code}`));
    child.on('error', (error) => {
      // Only a child that never started ends here without an exit event.
      if (child.pid === undefined) end(`an error before it started: ${error.message}`);
      else log.warn(`supervisor: ${spec.name} (pid ${child.pid}): ${error.message}`);
    });
    if (child.pid !== undefined) log.info(`supervisor: ${spec.name} started (pid ${child.pid})`);
  }

  private message(service: Service, child: ChildProcess, message: unknown): void {
    if (typeof message !== 'object' || message === null) return;
    const { docket, pid } = message as { docket?: unknown; pid?: unknown };
    if (docket === 'ready') {
      this.options.log.info(`supervisor: ${service.spec.name} ready (pid ${child.pid})`);
      this.options.onReady?.(service.spec.name);
    } else if (docket === 'command' && typeof pid === 'number') {
      this.options.log.info(`supervisor: ${service.spec.name} runs its command as pid ${pid} (under pid ${child.pid})`);
    }
  }

  private ended(service: Service, child: ChildProcess, how: string): void {
    const { spec } = service;
    const ranMs = Date.now() - service.startedAt;
    service.exits += 1;
    service.lastExit = how;
    if (service.child === child) service.child = undefined;
    if (service.stopping || this.closed) {
      this.options.log.info(`supervisor: ${spec.name} (pid ${child.pid}) stopped (${how})`);
      return;
    }
    if (ranMs >= this.healthyAfterMs) service.delayMs = this.initialDelayMs;
    const delay = service.delayMs;
    service.delayMs = Math.min(service.delayMs * 2, this.maxDelayMs);
    const lines = service.tail.split('\n').filter((line) => line.trim()).slice(-TAIL_LINES);
    const last = lines.length ? `; its last stderr lines:\n${lines.map((line) => `  | ${line}`).join('\n')}` : '; it wrote nothing to stderr';
    this.options.log.error(
      `supervisor: ${spec.name} (pid ${child.pid ?? 'none'}) ended with ${how} after ${(ranMs / 1000).toFixed(1)}s; restarting it in ${delay / 1000}s${last}`,
    );
    service.restartTimer = setTimeout(() => {
      service.restartTimer = undefined;
      if (!service.stopping && !this.closed) this.spawn(service);
    }, delay);
  }

  private async stopService(service: Service): Promise<void> {
    service.stopping = true;
    clearTimeout(service.restartTimer);
    const child = service.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const force = setTimeout(() => {
        this.options.log.warn(`supervisor: ${service.spec.name} (pid ${child.pid}) did not stop within ${this.graceMs / 1000}s of SIGTERM: SIGKILL`);
        killGroup(child, 'SIGKILL');
      }, this.graceMs);
      child.kill('SIGTERM');
      await service.exited;
      clearTimeout(force);
    }
    // The group may still hold what the child started (a tethered command, a process-runner engine).
    if (child) killGroup(child, 'SIGKILL');
    await new Promise<void>((resolve) => (service.output ? service.output.end(resolve) : resolve()));
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already empty.
  }
}

/** How to run `docket <args>` (bin/docket, the entry point compose and systemd use too) as a plain Node process. */
export function docketCommand(args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: [join(__dirname, '..', 'bin', 'docket'), ...args] };
}

/**
 * How to run the tether (system/tether.ts) around `args`: from the build this process runs from
 * (system/compile.ts) with plain Node, or through tsx when this process runs through tsx too.
 */
export function tetherCommand(args: string[]): { command: string; args: string[] } {
  const build = runningBuild();
  if (!build) return tsxCommand(join(__dirname, 'tether.ts'), args);
  return { command: process.execPath, args: ['--enable-source-maps', entryFile(build, 'tether'), ...args] };
}

/** How to run one of Docket's TypeScript entry points as a plain Node process (no tsx wrapper process in between). */
export function tsxCommand(script: string, args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', pathToFileURL(require.resolve('tsx')).href, script, ...args] };
}
