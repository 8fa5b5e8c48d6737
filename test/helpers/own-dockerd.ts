import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';

/**
 * A dockerd of a test's own, standing in for a second Docker host: its own data root, exec root,
 * pidfile, unix socket and cgroup parent, no bridge and no iptables rules, so stopping or killing it
 * touches nothing else on the machine.
 *
 * It runs in a network namespace of its own. A dockerd started with `--bridge=none` deletes the
 * `docker0` interface of the namespace it runs in, which in the machine's namespace is the main
 * daemon's default bridge: every `docker run` and `docker build` on the default network then fails.
 * Its containerd outlives a SIGKILL of dockerd, and the next start takes it over (moby reuses a
 * running managed containerd).
 */
export class OwnDockerd {
  readonly socket: string;
  readonly client: Docker;
  log = '';
  private child?: ChildProcess;
  private readonly namespace = `docket-dkd-${randomBytes(3).toString('hex')}`;
  private readonly cgroup = `/docket-test-${randomBytes(3).toString('hex')}`;

  private constructor(readonly dir: string) {
    this.socket = join(dir, 'docker.sock');
    this.client = new Docker({ socketPath: this.socket });
  }

  /** Its folder and network namespace, not yet started (`restart`). */
  static create(): OwnDockerd {
    // Short folder: the socket path must fit a sockaddr_un, and containerd's sockets live under the exec root.
    const daemon = new OwnDockerd(mkdtempSync(join(tmpdir(), 'dkd-')));
    const made = spawnSync('ip', ['netns', 'add', daemon.namespace], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`ip netns add ${daemon.namespace} failed (needs root and iproute2): ${made.stderr}`);
    spawnSync('ip', ['-n', daemon.namespace, 'link', 'set', 'lo', 'up']);
    return daemon;
  }

  static async start(): Promise<OwnDockerd> {
    const daemon = OwnDockerd.create();
    await daemon.restart();
    return daemon;
  }

  get host(): string {
    return `unix://${this.socket}`;
  }

  /** Starts dockerd (again, after a kill) and waits until it answers. */
  async restart(limitMs = 90_000): Promise<void> {
    // nsenter, not `ip netns exec`: that also mounts a fresh /sys, which hides the cgroup mounts dockerd needs.
    const child = spawn('nsenter', [
      `--net=/run/netns/${this.namespace}`, 'dockerd',
      '--data-root', join(this.dir, 'data'), '--exec-root', join(this.dir, 'exec'), '--pidfile', join(this.dir, 'docker.pid'),
      '-H', this.host, '--bridge=none', '--iptables=false', '--ip6tables=false', '--cgroup-parent', this.cgroup,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => { this.log = (this.log + chunk.toString('utf8')).slice(-4000); });
    const deadline = Date.now() + limitMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the test's dockerd exited with ${child.exitCode}:\n${this.log}`);
      if (await this.client.ping().then(() => true, () => false)) return;
      if (Date.now() > deadline) throw new Error(`the test's dockerd did not answer within ${limitMs / 1000}s:\n${this.log}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }

  /** `docker save … | docker -H <socket> load`: the images come from the machine's daemon, not a registry. */
  async load(images: string[]): Promise<void> {
    const save = spawn('docker', ['save', ...images], { stdio: ['ignore', 'pipe', 'pipe'] });
    const load = spawn('docker', ['-H', this.host, 'load', '-q'], { stdio: ['pipe', 'ignore', 'pipe'] });
    save.stdout!.pipe(load.stdin!);
    let errors = '';
    for (const child of [save, load]) child.stderr!.on('data', (chunk: Buffer) => { errors += chunk; });
    const codes = await Promise.all([save, load].map((child) => new Promise<number | null>((resolve) => child.once('exit', resolve))));
    if (codes.some((code) => code !== 0)) throw new Error(`docker save | docker load failed: ${errors}`);
  }

  /** Stops dockerd, then removes its namespace and folder; refuses to delete through a mount left behind. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(force);
    }
    spawnSync('ip', ['netns', 'delete', this.namespace]);
    // A dockerd killed with SIGKILL leaves its mounts (the data root's own bind mount among them), and
    // the next one does not take them over. All are under this folder: unmount them, deepest first.
    for (const mount of this.mounts().reverse()) {
      try {
        execFileSync('umount', ['-l', mount], { stdio: 'pipe' });
      } catch {
        // Gone meanwhile, or a parent's unmount took it.
      }
    }
    const left = this.mounts();
    if (left.length) throw new Error(`the test's dockerd left mounts under ${this.dir}: ${left.join(', ')}; unmount them, then remove the folder`);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private mounts(): string[] {
    return readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1]).filter((path) => path?.startsWith(`${this.dir}/`));
  }
}
