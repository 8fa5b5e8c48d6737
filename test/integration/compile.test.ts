import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { compiledBuild, ENTRY_POINTS, entryFile, INPUT_FILES, SOURCE_DIRS, sourceKey } from '../../system/compile';
import { freePort } from '../../system/temporal-dev';
import { alive } from '../helpers/launcher';
import { poll, ROOT, temporalAddress } from '../helpers/system';

const copies: string[] = [];
const children: ChildProcess[] = [];

/**
 * A copy of the checkout whose sources a test may change. Its node_modules is a folder of links to
 * Docket's packages, so its cache (node_modules/.cache) is its own and a test may take a package away.
 */
function checkoutCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'docket-compile-'));
  copies.push(root);
  for (const dir of [...SOURCE_DIRS, 'bin']) cpSync(join(ROOT, dir), join(root, dir), { recursive: true });
  for (const file of INPUT_FILES) cpSync(join(ROOT, file), join(root, file));
  mkdirSync(join(root, 'node_modules'));
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (!name.startsWith('.')) symlinkSync(join(ROOT, 'node_modules', name), join(root, 'node_modules', name));
  }
  return root;
}

const cacheOf = (root: string) => join(root, 'node_modules', '.cache', 'docket', 'compiled');
const builds = (cacheDir: string) => readdirSync(cacheDir).filter((name) => /^[0-9a-f]{32}$/.test(name)).sort();

/** `docket <args>` from a copy, as a deployment runs it. */
function docket(root: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [join(root, 'bin', 'docket'), ...args], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
}

/** Settings that keep a gateway to this test: its own port, folders and queues on the shared test Temporal. */
async function gatewayEnv(): Promise<NodeJS.ProcessEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'docket-compile-role-'));
  copies.push(dir);
  mkdirSync(join(dir, 'engines', 'fileinfo'), { recursive: true });
  cpSync(join(ROOT, 'engines', 'fileinfo', 'engine.yaml'), join(dir, 'engines', 'fileinfo', 'engine.yaml'));
  return {
    TEMPORAL_ADDRESS: temporalAddress(),
    DOCKET_HOST: '127.0.0.1',
    DOCKET_PORT: String(await freePort()),
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_ENGINES_DIR: join(dir, 'engines'),
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
    DOCKET_POLICY_FILE: join(dir, 'no-policy.yaml'),
    DOCKET_QUEUE_PREFIX: `c${randomBytes(4).toString('hex')}-`,
  };
}

/** Starts `docket gateway` from a copy and waits until its /healthz answers 200; returns what it printed. */
async function gatewayAnswers(root: string): Promise<string> {
  const env = await gatewayEnv();
  const child = spawn(process.execPath, [join(root, 'bin', 'docket'), 'gateway'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  const status = await poll(
    () => fetch(`http://127.0.0.1:${env.DOCKET_PORT}/healthz`).then((r) => r.status, () => (child.exitCode !== null ? -1 : 0)),
    (code) => code === 200 || code === -1,
    `the gateway's /healthz from ${root}`,
    180_000,
  );
  if (status !== 200) throw new Error(`docket gateway exited with ${child.exitCode}:\n${output}`);
  return output;
}

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)))));
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

describe('the compile cache (system/compile.ts)', () => {
  let root: string;
  let cacheDir: string;

  beforeAll(() => {
    root = checkoutCopy();
    cacheDir = mkdtempSync(join(tmpdir(), 'docket-compile-cache-'));
    copies.push(cacheDir);
  });

  it('builds once, then serves the same build while the sources are unchanged', async () => {
    const first = await compiledBuild({ root, cacheDir });
    expect(first.outcome).toBe('built');
    for (const name of ['run', 'tether'] as const) {
      expect(existsSync(entryFile(first, name))).toBe(true);
      // The map, written in a folder of its own and moved into place, still names the sources where they are.
      const map = JSON.parse(readFileSync(`${entryFile(first, name)}.map`, 'utf8')) as { sources: string[] };
      const sources = map.sources.map((source) => resolve(first.dir, source));
      expect(sources).toContain(join(root, ENTRY_POINTS[name]));
      for (const source of sources) expect(existsSync(source) && source.startsWith(`${root}${sep}`)).toBe(true);
    }
    const second = await compiledBuild({ root, cacheDir });
    expect(second).toEqual({ dir: first.dir, key: first.key, outcome: 'cached' });
    expect(builds(cacheDir)).toEqual([first.key]);
    expect(readdirSync(cacheDir).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('names each module\'s own folder where the source says __dirname, and keeps class names Temporal reports failures by', async () => {
    const { dir } = await compiledBuild({ root, cacheDir });
    const run = readFileSync(entryFile(dir, 'run'), 'utf8');
    expect(run).not.toMatch(/\b__dirname\b/);
    expect(run).toContain(JSON.stringify(join(root, 'gateway')));
    expect(run).toContain('__name(this, "DockerUnavailableError")');
  });

  it('builds again when a source changes, and the new build holds the change', async () => {
    const before = await compiledBuild({ root, cacheDir });
    const marker = `compile-marker-${randomBytes(6).toString('hex')}`;
    const tether = join(root, 'system', 'tether.ts');
    writeFileSync(tether, `${readFileSync(tether, 'utf8')}\nexport const compileMarker = '${marker}';\n`);
    const after = await compiledBuild({ root, cacheDir });
    expect(after.outcome).toBe('built');
    expect(after.key).not.toBe(before.key);
    expect(readFileSync(entryFile(after, 'tether'), 'utf8')).toContain(marker);
    expect(readFileSync(entryFile(before, 'tether'), 'utf8')).not.toContain(marker);
    expect((await compiledBuild({ root, cacheDir })).outcome).toBe('cached');
  });

  it('keeps the newest builds and those used within a day, and removes older ones and partial builds left for ten minutes', async () => {
    const fake = (name: string, ageMs: number, files = ['run.js', 'tether.js']) => {
      mkdirSync(join(cacheDir, name));
      for (const file of files) writeFileSync(join(cacheDir, name, file), '');
      const at = (Date.now() - ageMs) / 1000;
      utimesSync(join(cacheDir, name), at, at);
    };
    const day = 24 * 60 * 60_000;
    const unused = ['a', 'b', 'c'].map((letter, i) => { fake(letter.repeat(32), 2 * day + i * 60_000); return letter.repeat(32); });
    fake('d'.repeat(32), 60 * 60_000);
    fake('.partial-left-behind', 20 * 60_000, []);
    fake('.partial-being-written', 0, []);
    const tether = join(root, 'system', 'tether.ts');
    writeFileSync(tether, `${readFileSync(tether, 'utf8')}\n// pruned\n`);
    const built = await compiledBuild({ root, cacheDir });
    expect(built.outcome).toBe('built');
    const left = readdirSync(cacheDir);
    for (const name of unused) expect(left).not.toContain(name);
    expect(left).toEqual(expect.arrayContaining([built.key, 'd'.repeat(32), '.partial-being-written']));
    expect(left).not.toContain('.partial-left-behind');
    rmSync(join(cacheDir, '.partial-being-written'), { recursive: true });
  });

  it('keys on every source, package.json, package-lock.json and tsconfig.json, and not on other files', () => {
    let key = sourceKey(root);
    const changes = [
      () => writeFileSync(join(root, 'gateway', 'added.ts'), 'export const added = 1;\n'),
      ...INPUT_FILES.map((file) => () => writeFileSync(join(root, file), `${readFileSync(join(root, file), 'utf8')}\n`)),
    ];
    for (const change of changes) {
      change();
      const next = sourceKey(root);
      expect(next).not.toBe(key);
      key = next;
    }
    writeFileSync(join(root, 'gateway', 'console', 'added.js'), 'export const notCompiled = 1;\n');
    writeFileSync(join(root, 'README.md'), 'not compiled\n');
    expect(sourceKey(root)).toBe(key);
  });

  it('fails, leaving nothing, when the cache folder cannot be written', async () => {
    const notAFolder = join(cacheDir, 'a-file');
    writeFileSync(notAFolder, '');
    await expect(compiledBuild({ root, cacheDir: join(notAFolder, 'compiled') })).rejects.toThrow(/ENOTDIR|EEXIST/);
  });

  it('fails naming the file and line when a source does not compile', async () => {
    writeFileSync(join(root, 'core', 'broken.ts'), 'export const broken = ;\n');
    const run = join(root, 'scripts', 'run.ts');
    const original = readFileSync(run, 'utf8');
    writeFileSync(run, `import '../core/broken';\n${original}`);
    try {
      await expect(compiledBuild({ root, cacheDir })).rejects.toThrow(/core\/broken\.ts:1: /);
      expect(readdirSync(cacheDir).filter((name) => name.startsWith('.partial'))).toEqual([]);
    } finally {
      writeFileSync(run, original);
      rmSync(join(root, 'core', 'broken.ts'));
    }
  });

  it('runs the tether from the build: it runs its command and stops it when its channel closes', async () => {
    const { dir } = await compiledBuild({ root, cacheDir });
    const tether = spawn(process.execPath, ['--enable-source-maps', entryFile(dir, 'tether'), 'sleep', '120'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    children.push(tether);
    const pid = await new Promise<number>((resolve, reject) => {
      tether.once('message', (message) => resolve((message as { pid: number }).pid));
      tether.once('exit', (code) => reject(new Error(`the tether exited with ${code}`)));
    });
    expect(alive(pid)).toBe(true);
    tether.disconnect();
    await poll(async () => alive(pid), (running) => !running, 'the tethered command to stop', 30_000);
  });
});

describe('bin/docket: roles run from the build', () => {
  it('makes one build when two starts race on an empty cache, and both use it', async () => {
    const root = checkoutCopy();
    const run = (): Promise<{ code: number | null; out: string }> => new Promise((resolve) => {
      const child = spawn(process.execPath, [join(root, 'bin', 'docket'), 'compile'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
      child.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
      child.on('exit', (code) => resolve({ code, out }));
    });
    const [first, second] = await Promise.all([run(), run()]);
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    const [key] = builds(cacheOf(root));
    expect(builds(cacheOf(root))).toEqual([key]);
    expect(first.out).toContain(`compiled into ${join(cacheOf(root), key)}`);
    expect(second.out).toContain(`compiled into ${join(cacheOf(root), key)}`);
    expect(readdirSync(cacheOf(root)).filter((name) => name.includes('partial'))).toEqual([]);
  });

  it('runs a role from the build with plain Node: the gateway answers /healthz with tsx gone, and stack traces name the .ts lines', async () => {
    const root = checkoutCopy();
    const run = join(root, 'scripts', 'run.ts');
    writeFileSync(run, `if (process.env.DOCKET_TEST_THROW === '1') setImmediate(() => { throw new Error('thrown from run.ts'); });\n${readFileSync(run, 'utf8')}`);
    expect(docket(root, ['compile']).status).toBe(0);
    // Only tsx's package.json stays (where the build finds its esbuild): its loaders are gone.
    unlinkSync(join(root, 'node_modules', 'tsx'));
    mkdirSync(join(root, 'node_modules', 'tsx'));
    cpSync(join(ROOT, 'node_modules', 'tsx', 'package.json'), join(root, 'node_modules', 'tsx', 'package.json'));

    const output = await gatewayAnswers(root);
    expect(output).not.toContain('through tsx');
    const thrown = docket(root, ['gateway'], { ...(await gatewayEnv()), DOCKET_TEST_THROW: '1' });
    expect(thrown.status).not.toBe(0);
    expect(thrown.stderr).toContain('thrown from run.ts');
    expect(thrown.stderr).toMatch(/scripts\/run\.ts:1:\d+/);
  });

  it('loads the TypeScript through tsx, saying why, when its cache cannot be written; the gateway still answers', async () => {
    const root = checkoutCopy();
    mkdirSync(join(root, 'node_modules', '.cache', 'docket'), { recursive: true });
    writeFileSync(cacheOf(root), 'not a folder');
    const output = await gatewayAnswers(root);
    expect(output).toContain(`docket: cannot compile Docket into ${cacheOf(root)}`);
    expect(output).toContain('through tsx instead');
  });
});
