/**
 * Docket's TypeScript compiled once to JavaScript, so a process runs it with plain Node instead of
 * compiling and loading every module through tsx's hooks at each start (about half of a role's start,
 * measured: README, "Benchmarks"). `bin/docket` asks for the build and runs `run.js` from it; the
 * launcher runs the dev server's tether from the same build.
 *
 * A build is one folder under `node_modules/.cache/docket/compiled/` (beside the workflow bundle's
 * cache), named by a hash of everything that goes into it: the sources, package.json, package-lock.json,
 * tsconfig.json, the esbuild version and the checkout's folder (the build names its source folders).
 * A change to any of them makes a new build at the next start. Each build is written to a folder of
 * its own and renamed into place, so a process starting beside it never reads half a build.
 *
 * The packages stay in node_modules (esbuild's `packages: 'external'`): a build holds only Docket's own
 * code, one file per entry point with its source map, so stack traces name the `.ts` lines.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import type * as Esbuild from 'esbuild';

/** The folders Docket's processes load their code from (docs/architecture.md, "Layers"). */
export const SOURCE_DIRS = ['core', 'contract', 'workflows', 'infra', 'activities', 'workers', 'gateway', 'system', 'scripts'];

/** Files outside them that change a build: package.json is imported (the version), tsconfig.json sets how TypeScript compiles. */
export const INPUT_FILES = ['package.json', 'package-lock.json', 'tsconfig.json'];

/** Each entry point becomes `<name>.js` in the build: `docket <role>` and the tether the dev server runs under. */
export const ENTRY_POINTS = { run: 'scripts/run.ts', tether: 'system/tether.ts' } as const;
export type EntryPoint = keyof typeof ENTRY_POINTS;

/**
 * Builds beyond the newest few go once unused for a day (each start that uses one touches it): a
 * launcher running from an older build still starts its tether from it after the sources changed.
 */
const KEEP_BUILDS = 3;
const UNUSED_MS = 24 * 60 * 60_000;
/** A partial build older than this was left by a process that died while writing it. */
const STALE_PARTIAL_MS = 10 * 60_000;
const PARTIAL_PREFIX = '.partial-';
const BUILD_NAME = /^[0-9a-f]{32}$/;

/** Set at build time (esbuild `define`) to the folder of the build the code runs from; no such global exists under tsx. */
declare const DOCKET_BUILD_DIR: string | undefined;

/** The build this process runs from, or undefined when it runs through tsx (tests, `npm run` scripts). */
export function runningBuild(): string | undefined {
  return typeof DOCKET_BUILD_DIR === 'string' ? DOCKET_BUILD_DIR : undefined;
}

export interface CompileOptions {
  /** The checkout: the folder holding the source folders and node_modules. */
  root: string;
  /** Where builds are kept (bin/docket: `node_modules/.cache/docket/compiled`). */
  cacheDir: string;
}

export interface Build {
  dir: string;
  key: string;
  /** `cached` when an earlier start made it, `built` when this call ran esbuild. */
  outcome: 'cached' | 'built';
}

/** The JavaScript file of an entry point in a build. */
export function entryFile(build: Build | string, name: EntryPoint): string {
  return join(typeof build === 'string' ? build : build.dir, `${name}.js`);
}

/**
 * The build of the sources under `root` as they are now: from the cache when one was made from the
 * same inputs, else made now. Throws when it cannot be made or written (a read-only checkout, a syntax
 * error esbuild reports): the caller runs the sources through tsx instead and says why.
 */
export async function compiledBuild(options: CompileOptions): Promise<Build> {
  const { root, cacheDir } = options;
  const key = sourceKey(root);
  const dir = join(cacheDir, key);
  if (isComplete(dir)) {
    markUsed(dir);
    return { dir, key, outcome: 'cached' };
  }

  // Readable by others as the checkout is: an install compiled by its owner (`docket compile`) serves the service's user.
  mkdirSync(cacheDir, { recursive: true });
  const partial = join(cacheDir, `${PARTIAL_PREFIX}${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await bundle(root, partial, dir);
    try {
      renameSync(partial, dir);
    } catch (error) {
      // Another process starting at the same time put the same build in place first: use theirs.
      if (!isComplete(dir)) throw error;
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  prune(cacheDir, key);
  return { dir, key, outcome: 'built' };
}

/** A hash of everything a build of the sources under `root` is made from. */
export function sourceKey(root: string): string {
  const hash = createHash('sha256');
  hash.update(`root ${root}\nesbuild ${esbuildVersion()}\n`);
  const files = [...SOURCE_DIRS.flatMap((dir) => sourcesUnder(join(root, dir))), ...INPUT_FILES.map((name) => join(root, name))];
  for (const path of files) {
    let content: Buffer;
    try {
      content = readFileSync(path);
    } catch {
      hash.update(`missing ${relative(root, path)}\n`);
      continue;
    }
    hash.update(`file ${relative(root, path)} ${content.length}\n`);
    hash.update(content);
  }
  return hash.digest('hex').slice(0, 32);
}

/** The esbuild that tsx brings (Docket compiles as tsx does, with the same version). */
function esbuildRequire(): NodeJS.Require {
  return createRequire(require.resolve('tsx/package.json'));
}

function esbuildVersion(): string {
  return (esbuildRequire()('esbuild/package.json') as { version: string }).version;
}

function isComplete(dir: string): boolean {
  return Object.keys(ENTRY_POINTS).every((name) => existsSync(entryFile(dir, name as EntryPoint)));
}

async function bundle(root: string, outdir: string, finalDir: string): Promise<void> {
  const esbuild = esbuildRequire()('esbuild') as typeof Esbuild;
  try {
    await esbuild.build({
      absWorkingDir: root,
      entryPoints: Object.fromEntries(Object.entries(ENTRY_POINTS).map(([name, path]) => [name, join(root, path)])),
      outdir,
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      sourcemap: 'linked',
      sourcesContent: false,
      // Temporal names a failure after its error's class (`error.constructor.name`): bundling must not rename a class.
      keepNames: true,
      define: { DOCKET_BUILD_DIR: JSON.stringify(finalDir) },
      plugins: [sourceFolders()],
      logLevel: 'silent',
    });
  } catch (error) {
    const errors = (error as { errors?: Esbuild.Message[] }).errors ?? [];
    const first = errors[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}: ` : '';
    throw new Error(first ? `${where}${first.text}` : (error as Error).message);
  } finally {
    // The build service is a child process; a launcher runs for days and needs it no more.
    await esbuild.stop();
  }
}

/**
 * `__dirname` in a bundle would be the build's folder; Docket's modules mean their own (the console's
 * files, the workflow sources, provision.sh). Each becomes its source file's folder, a string.
 */
function sourceFolders(): Esbuild.Plugin {
  return {
    name: 'docket-source-folders',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('__dirname')) return { contents: source, loader: 'ts' };
        return { contents: source.replace(/\b__dirname\b/g, JSON.stringify(dirname(args.path))), loader: 'ts' };
      });
    },
  };
}

/** Keeps the newest builds and removes partial ones their writer left behind. */
function prune(cacheDir: string, current: string): void {
  let entries: Array<{ path: string; name: string; mtimeMs: number }>;
  try {
    entries = readdirSync(cacheDir).map((name) => {
      const path = join(cacheDir, name);
      return { path, name, mtimeMs: statSync(path).mtimeMs };
    });
  } catch {
    return;
  }
  const now = Date.now();
  const builds = entries.filter((entry) => BUILD_NAME.test(entry.name) && entry.name !== current).sort((a, b) => b.mtimeMs - a.mtimeMs);
  const stale = [
    ...builds.slice(KEEP_BUILDS - 1).filter((entry) => now - entry.mtimeMs > UNUSED_MS),
    ...entries.filter((entry) => entry.name.startsWith(PARTIAL_PREFIX) && now - entry.mtimeMs > STALE_PARTIAL_MS),
  ];
  for (const entry of stale) rmSync(entry.path, { recursive: true, force: true });
}

function markUsed(dir: string): void {
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // A read-only install: its builds are not pruned by a start either.
  }
}

/**
 * Every TypeScript file under `dir`, in a stable order. Its own walk rather than workers/workflow-bundle.ts's
 * (every file): `bin/docket` turns this file into JavaScript alone, unbundled, so it imports nothing of Docket.
 */
function sourcesUnder(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourcesUnder(path));
    else if (entry.isFile() && entry.name.endsWith('.ts')) files.push(path);
  }
  return files;
}
