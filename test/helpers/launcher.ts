import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tsxCommand } from '../../system/supervisor';
import { freePort } from '../../system/temporal-dev';
import { poll, ROOT } from './system';

/** `npm start` as a person runs it: the launcher is a real process with real children and its own dev server. */
export class Launcher {
  output = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly dir: string, readonly ports: { gateway: number; temporal: number; ui: number; worker: number; engines: number }, readonly queuePrefix: string) {
    mkdirSync(join(dir, 'engines', 'fileinfo'), { recursive: true });
    copyFileSync(join(ROOT, 'engines', 'fileinfo', 'engine.yaml'), join(dir, 'engines', 'fileinfo', 'engine.yaml'));
    mkdirSync(join(dir, 'schedules'), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DOCKET_SKIP_PROVISION: '1',
      DOCKET_DATA_DIR: join(dir, 'data'),
      DOCKET_ENGINES_DIR: join(dir, 'engines'),
      DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
      DOCKET_POLICY_FILE: join(dir, 'no-policy.yaml'),
      DOCKET_PORT: String(ports.gateway),
      DOCKET_WORKER_PORT: String(ports.worker),
      DOCKET_ENGINES_PORT: String(ports.engines),
      DOCKET_TEMPORAL_PORT: String(ports.temporal),
      DOCKET_TEMPORAL_UI_PORT: String(ports.ui),
      DOCKET_QUEUE_PREFIX: queuePrefix,
    };
    delete env.TEMPORAL_ADDRESS;
    const { command, args } = tsxCommand(join(ROOT, 'scripts', 'start.ts'), []);
    this.child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => { this.output += chunk.toString('utf8'); };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** `before` runs once the ports are chosen and before the launcher starts. */
  static async start(before?: (ports: Launcher['ports']) => Promise<void>): Promise<Launcher> {
    const dir = mkdtempSync(join(tmpdir(), 'docket-launcher-'));
    const ports = { gateway: await freePort(), temporal: await freePort(), ui: await freePort(), worker: await freePort(), engines: await freePort() };
    await before?.(ports);
    return new Launcher(dir, ports, `s${randomBytes(4).toString('hex')}-`);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.ports.gateway}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The lines matching `pattern`, once there are more than `after` of them. */
  async waitFor(pattern: RegExp, after = 0, limitMs = 180_000): Promise<RegExpMatchArray[]> {
    const global = new RegExp(pattern.source, 'g');
    const matches = await poll(
      async () => [...this.output.matchAll(global)],
      (found) => found.length > after || this.child.exitCode !== null,
      `${pattern} in the launcher's output:\n${this.output.slice(-3000)}`,
      limitMs,
    );
    if (matches.length <= after) throw new Error(`the launcher exited before printing ${pattern}:\n${this.output.slice(-3000)}`);
    return matches;
  }

  /** The pid the supervisor last started `role` as. */
  async rolePid(role: string, after = 0): Promise<number> {
    const started = await this.waitFor(new RegExp(`supervisor: ${role} started \\(pid (\\d+)\\)`), after);
    return Number(started[started.length - 1][1]);
  }

  count(pattern: RegExp): number {
    return [...this.output.matchAll(new RegExp(pattern.source, 'g'))].length;
  }

  /** Kills whatever is left, for cleanup after a failed test. */
  async kill(): Promise<void> {
    const family = [this.pid, ...descendants(this.pid)];
    for (const pid of family) signal(pid, 'SIGKILL');
    await poll(async () => family.filter(alive), (left) => left.length === 0, 'the launcher and its children to die', 30_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every process below `root`, read from /proc (a process's children are those naming it as parent). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Whether `pid` still runs; a zombie waiting for a parent that does not reap it counts as gone. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}
