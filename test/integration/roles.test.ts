import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from '../../system/temporal-dev';
import { getJson } from '../helpers/fixtures';
import { alive } from '../helpers/launcher';
import { poll, ROOT, temporalAddress } from '../helpers/system';

/** `docket <role>` (bin/docket) as deployments run it: a real process, from a folder that is not the checkout. */
const DOCKET = join(ROOT, 'bin', 'docket');

function docket(args: string[], env: NodeJS.ProcessEnv = {}, cwd = mkdtempSync(join(tmpdir(), 'docket-cwd-'))) {
  return spawnSync(process.execPath, [DOCKET, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
}

class Role {
  output = '';
  readonly child: ChildProcess;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [DOCKET, ...args], {
      cwd: mkdtempSync(join(tmpdir(), 'docket-cwd-')),
      env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), DOCKET_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => { this.output = (this.output + chunk.toString('utf8')).slice(-8000); };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
  }

  async running(role: string): Promise<void> {
    await poll(async () => this.output, (output) => output.includes(`docket ${role}: running`) || this.child.exitCode !== null, `docket ${role} to run`);
    if (this.child.exitCode !== null) throw new Error(`docket ${role} exited with ${this.child.exitCode}:\n${this.output}`);
  }

  async exit(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    return new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = this.exit();
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** Settings that keep a role to this test: its own folders and queues on the shared test Temporal. */
function isolated(): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'docket-roles-'));
  mkdirSync(join(dir, 'engines', 'fileinfo'), { recursive: true });
  writeFileSync(join(dir, 'engines', 'fileinfo', 'engine.yaml'), readFileSync(join(ROOT, 'engines', 'fileinfo', 'engine.yaml')));
  mkdirSync(join(dir, 'schedules'));
  return {
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_ENGINES_DIR: join(dir, 'engines'),
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
    DOCKET_POLICY_FILE: join(dir, 'no-policy.yaml'),
    DOCKET_QUEUE_PREFIX: `r${Math.random().toString(16).slice(2, 10)}-`,
  };
}

describe('docket: one entry point for every role', () => {
  it('prints its usage and exits 0 for --help, from any folder and through a symlink on PATH', () => {
    const dir = mkdtempSync(join(tmpdir(), 'docket-bin-'));
    symlinkSync(DOCKET, join(dir, 'docket'));
    const linked = spawnSync(join(dir, 'docket'), ['--help'], { cwd: dir, encoding: 'utf8', env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` } });
    expect(linked.status).toBe(0);
    expect(linked.stdout).toMatch(/^usage: docket <role>/);
    for (const role of ['gateway', 'worker', 'engines', 'start']) {
      const help = docket([role, '--help']);
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(`docket ${role}`);
    }
  });

  it('refuses an unknown role, a missing role and arguments a role does not take with its usage and exit 2', () => {
    for (const args of [['gatway'], [], ['worker', 'fileinfo']]) {
      const result = docket(args);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain('usage: docket <role>');
    }
    expect(docket(['gatway']).stderr).toContain('unknown role "gatway"');
  });

  it('refuses to serve an engine no manifest defines, naming the engines it has, with exit 2', () => {
    const result = docket(['engines', 'fileinfo,yarra'], { ...isolated(), TEMPORAL_ADDRESS: temporalAddress() });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('no engine named yarra');
    expect(result.stderr).toContain('loaded: fileinfo');
  });
});

describe('the worker and engines roles: their own /healthz, /readyz and /metrics', () => {
  const roles: Role[] = [];
  const start = (args: string[], env: NodeJS.ProcessEnv) => {
    const role = new Role(args, env);
    roles.push(role);
    return role;
  };
  afterAll(async () => {
    await Promise.all(roles.map((role) => role.stop()));
  });

  it('serves the engines role: ready with its Docker engine and workers, its own engine metrics, nothing else', async () => {
    const port = await freePort();
    const role = start(['engines', 'fileinfo'], { ...isolated(), DOCKET_ENGINES_PORT: String(port) });
    await role.running('engines');
    expect(role.output).toContain(`health and metrics on http://127.0.0.1:${port}`);
    const base = `http://127.0.0.1:${port}`;

    expect(await getJson(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok', role: 'engines' } });
    const ready = await getJson(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready', role: 'engines',
      checks: { temporal: { ok: true }, docker: { ok: true, message: 'Docker answers' }, workers: { ok: true, message: expect.stringContaining('engine fileinfo') } },
    });
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const text = await metrics.text();
    expect(text).toContain('# HELP docket_engine_jobs_total');
    expect(text).toContain('docket_process_resident_memory_bytes');
    expect(text).not.toContain('docket_http_requests_total');

    const unknown = await getJson(`${base}/v1/investigations`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('/healthz, /readyz and /metrics');
    const post = await fetch(`${base}/readyz`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('serves the worker role without engine metrics, ready while its main worker polls', async () => {
    const port = await freePort();
    const role = start(['worker'], { ...isolated(), DOCKET_WORKER_PORT: String(port) });
    await role.running('worker');
    const ready = await getJson(`http://127.0.0.1:${port}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready', role: 'worker', checks: { temporal: { ok: true }, workers: { ok: true, message: expect.stringContaining('main') } } } });
    expect(ready.body.checks.docker).toBeUndefined();
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text());
    expect(text).not.toContain('docket_engine_jobs_total');
    expect(text).toContain('docket_nodejs_heap_size_used_bytes');
  });

  it('answers 503 naming the Docker engine when the engines role cannot reach it', async () => {
    const port = await freePort();
    const role = start(['engines', 'fileinfo'], {
      ...isolated(), DOCKET_ENGINES_PORT: String(port), DOCKER_HOST: `unix://${join(mkdtempSync(join(tmpdir(), 'no-docker-')), 'docker.sock')}`,
    });
    await role.running('engines');
    const ready = await getJson(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'not ready', checks: { docker: { ok: false }, temporal: { ok: true } } });
    expect(ready.body.checks.docker.message).toMatch(/^cannot reach Docker: /);
  });

  it('stops at start, naming the setting, when its health port is taken; 0 turns the listener off', async () => {
    const holder: Server = createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as { port: number }).port)));
    try {
      const taken = start(['worker'], { ...isolated(), DOCKET_WORKER_PORT: String(port) });
      expect(await taken.exit()).toBe(1);
      expect(taken.output).toContain(`127.0.0.1:${port} is already in use: set DOCKET_WORKER_PORT to a free port, or to 0`);
    } finally {
      holder.close();
    }
    const off = start(['worker'], { ...isolated(), DOCKET_WORKER_PORT: '0' });
    await off.running('worker');
    expect(off.output).not.toContain('health and metrics on');
  });
});

describe('the systemd units in deploy/systemd', () => {
  const units = join(ROOT, 'deploy', 'systemd');

  /** The units as installed: the checkout where they say /opt/docket, the environment files where they say /etc/docket. */
  function installed(): string {
    const dir = mkdtempSync(join(tmpdir(), 'docket-units-'));
    for (const name of readdirSync(units)) {
      const text = readFileSync(join(units, name), 'utf8').replaceAll('/opt/docket', ROOT).replaceAll('/etc/docket/', `${dir}/`);
      writeFileSync(join(dir, name), text);
    }
    return dir;
  }

  it('has one unit per role, each running a role bin/docket knows', () => {
    const files = readdirSync(units).filter((name) => name.endsWith('.service')).sort();
    expect(files).toEqual(['docket-engines@.service', 'docket-gateway.service', 'docket-worker.service']);
    for (const file of files) {
      const exec = /^ExecStart=\/opt\/docket\/bin\/docket (\w+)$/m.exec(readFileSync(join(units, file), 'utf8'));
      expect(exec).not.toBeNull();
      expect(docket([exec![1], '--help']).status).toBe(0);
    }
    expect(readFileSync(join(units, 'docket-engines@.service'), 'utf8')).toMatch(/^SupplementaryGroups=docker$/m);
    expect(readFileSync(join(units, 'docket-gateway.service'), 'utf8')).not.toMatch(/SupplementaryGroups/);
  });

  it('passes systemd-analyze verify without a warning, and its offline security review', () => {
    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (analyze.error) throw new Error('systemd-analyze is missing: apt-get install systemd, then run this test again');
    const dir = installed();
    const paths = ['docket-gateway.service', 'docket-worker.service', 'docket-engines@local.service'].map((name) => join(dir, name));
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', ...paths], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
    for (const path of paths) {
      // The threshold is on systemd's 0-100 scale, printed as 0-10: above 2.0 of 10 ("OK" ends at 3.9) fails.
      const security = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=20', '--no-pager', path], { encoding: 'utf8' });
      expect({ path, status: security.status }).toEqual({ path, status: 0 });
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails verification when a unit names a key systemd does not know', () => {
    const dir = installed();
    const path = join(dir, 'docket-worker.service');
    writeFileSync(path, readFileSync(path, 'utf8').replace('ProtectHome=yes', 'ProtectHomes=yes'));
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
    expect(verify.stderr).toContain("Unknown key 'ProtectHomes'");
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('first start: scripts/provision.sh', () => {
  it('prints a line per step with its seconds and the total, warm', () => {
    const result = spawnSync('bash', [join(ROOT, 'scripts', 'provision.sh'), 'temporal', 'docker', 'base'], { encoding: 'utf8', timeout: 120_000 });
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/^provision: step temporal: ready \(\d+s\)$/m);
    expect(result.stderr).toMatch(/^provision: step docker: ready \(\d+s\)$/m);
    expect(result.stderr).toMatch(/^provision: step base: ready \(\d+s\)$/m);
    expect(result.stderr).toMatch(/^provision: done in \d+s \(temporal docker base\)$/m);
  });

  it('builds the Temporal CLI and versitygw in one background job while the next steps run, saying it is still building', () => {
    // A stand-in for `go` (the real builds take minutes): it takes a few seconds and installs an
    // executable named after each package it is given.
    const dir = mkdtempSync(join(tmpdir(), 'docket-provision-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'go'), [
      '#!/bin/sh',
      'if [ "$1" = env ]; then echo "$PWD/$2"; exit 0; fi',
      'echo "go: downloading $2"',
      'sleep 2',
      'shift',
      'for package in "$@"; do name=$(basename "${package%@*}"); printf "#!/bin/sh\\n" > "$GOBIN/$name" && chmod +x "$GOBIN/$name"; done',
    ].join('\n'));
    chmodSync(join(dir, 'bin', 'go'), 0o755);
    const result = spawnSync('bash', [join(ROOT, 'scripts', 'provision.sh'), 'temporal', 'versitygw', 'docker'], {
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        PATH: `${join(dir, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin`,
        XDG_CACHE_HOME: join(dir, 'cache'),
        DOCKET_TOOLS_DIR: join(dir, 'tools'),
        DOCKET_PROVISION_PROGRESS_SECONDS: '1',
      },
    });
    try {
      expect(result.status).toBe(0);
      const lines = result.stderr.split('\n');
      const background = lines.findIndex((line) => line === 'provision: step temporal: building in the background; the next steps run meanwhile');
      const versitygw = lines.findIndex((line) => line === 'provision: step versitygw: building in the background; the next steps run meanwhile');
      const docker = lines.findIndex((line) => /^provision: step docker: ready/.test(line));
      const built = lines.findIndex((line) => /^provision: built the Temporal CLI, versitygw in \d+s/.test(line));
      expect(background).toBeGreaterThanOrEqual(0);
      expect(versitygw).toBeGreaterThan(background);
      expect(docker).toBeGreaterThan(versitygw);
      expect(built).toBeGreaterThan(docker);
      expect(result.stderr).toMatch(/^provision: still building the Temporal CLI, versitygw \(\d+ s\)$/m);
      expect(result.stderr).not.toContain('go: downloading');
      expect(lines[lines.length - 2]).toMatch(/^provision: done in \d+s \(temporal versitygw docker\)$/);
      expect(readdirSync(join(dir, 'tools', 'bin'))).toEqual(['temporal']);
      expect(readdirSync(join(dir, 'cache', 'docket', 'versitygw', 'bin'))).toEqual(['versitygw']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the Temporal CLI\'s build when npm start gives up because the docker step failed, leaving no go behind', async () => {
    // Docker does not answer (DOCKER_HOST names no socket) and cannot be installed (stand-ins for docker
    // and apt-get that fail), so the docker step fails; the CLI is missing (its own tools folder), so its
    // build starts first; a stand-in for `go` records its pid and sleeps, as a long build would.
    const dir = mkdtempSync(join(tmpdir(), 'docket-first-start-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'go'), [
      '#!/bin/sh',
      'if [ "$1" = env ]; then echo "$PWD/$2"; exit 0; fi',
      `echo $$ > ${join(dir, 'go.pid')}`,
      'exec sleep 120',
    ].join('\n'));
    for (const failing of ['docker', 'apt-get']) writeFileSync(join(dir, 'bin', failing), '#!/bin/sh\nexit 1\n');
    for (const tool of ['go', 'docker', 'apt-get']) chmodSync(join(dir, 'bin', tool), 0o755);
    let goPid = 0;
    try {
      const result = spawnSync(process.execPath, [DOCKET, 'start'], {
        encoding: 'utf8',
        timeout: 90_000,
        env: {
          PATH: `${join(dir, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin`,
          HOME: process.env.HOME,
          XDG_CACHE_HOME: join(dir, 'cache'),
          DOCKET_TOOLS_DIR: join(dir, 'tools'),
          DOCKET_DATA_DIR: join(dir, 'data'),
          DOCKER_HOST: `unix://${join(dir, 'no-docker.sock')}`,
          DOCKET_PORT: '0', DOCKET_WORKER_PORT: '0', DOCKET_ENGINES_PORT: '0',
        },
      });
      goPid = Number(readFileSync(join(dir, 'go.pid'), 'utf8'));
      expect(result.status).toBe(1);
      expect(result.stderr + result.stdout).toContain('provision: step temporal: building in the background');
      expect(result.stderr + result.stdout).toContain('docket: provisioning (docker base) failed');
      expect(goPid).toBeGreaterThan(0);
      // A killed process lingers a moment as a zombie until it is reaped: wait for it to go, within 15 s.
      expect(await poll(async () => alive(goPid), (running) => !running, 'the stand-in go to exit', 15_000)).toBe(false);
    } finally {
      if (goPid) try { process.kill(goPid, 'SIGKILL'); } catch { /* gone */ }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
