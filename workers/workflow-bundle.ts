import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';

const ROOT = resolve(__dirname, '..');

/**
 * The folders a workflow bundle is made from: the layer rules let workflows import only `core/` and
 * `contract/` besides themselves (and take activities as types, which bundle to nothing).
 */
export const WORKFLOW_SOURCE_DIRS = ['workflows', 'core', 'contract'];

/** The packages whose installed versions go into the bundle (the SDK's bundler and runtime, and zod). */
const BUNDLED_PACKAGES = ['@temporalio/worker', '@temporalio/workflow', '@temporalio/common', 'zod'];

/** Beside webpack's and babel's caches; a read-only install falls back to bundling in memory. */
export const DEFAULT_BUNDLE_CACHE_DIR = join(ROOT, 'node_modules', '.cache', 'docket', 'workflow-bundle');

export interface CachedBundleOptions {
  /** Where the workflows' index is (`<root>/workflows`). */
  workflowsPath?: string;
  /** The folder the source folders are in. */
  root?: string;
  cacheDir?: string;
  /** Told once why the cache could not be used (a read-only folder): the bundle is still made. */
  warn?: (message: string) => void;
}

export interface CachedBundle {
  bundle: WorkflowBundle;
  /** `cached` when the code came from the cache, `built` when webpack ran. */
  outcome: 'cached' | 'built';
  key: string;
}

/**
 * The workflow bundle, from the cache when nothing that goes into it has changed since it was made
 * (a hash of every file in the source folders, their paths, and the bundled packages' versions), else
 * bundled with webpack and stored. The main worker would otherwise bundle at every start, seconds of
 * CPU that the other roles starting beside it need.
 */
export async function cachedWorkflowBundle(options: CachedBundleOptions = {}): Promise<CachedBundle> {
  const root = options.root ?? ROOT;
  const workflowsPath = options.workflowsPath ?? join(root, 'workflows');
  const cacheDir = options.cacheDir ?? DEFAULT_BUNDLE_CACHE_DIR;
  const key = workflowSourceKey(root);
  const file = join(cacheDir, `${key}.js`);
  try {
    return { bundle: { code: readFileSync(file, 'utf8') }, outcome: 'cached', key };
  } catch {
    // Not made yet, or unreadable: make it.
  }
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
  try {
    mkdirSync(cacheDir, { recursive: true });
    // One bundle per folder: older keys are stale once the sources changed.
    for (const name of readdirSync(cacheDir)) if (name.endsWith('.js') && name !== `${key}.js`) rmSync(join(cacheDir, name), { force: true });
    const partial = `${file}.${process.pid}.partial`;
    writeFileSync(partial, code, { mode: 0o600 });
    renameSync(partial, file);
  } catch (error) {
    options.warn?.(`workflow bundle: cannot cache it in ${cacheDir} (${(error as Error).message}); bundling at every start`);
  }
  return { bundle: { code }, outcome: 'built', key };
}

/** A hash of everything a bundle of the workflows under `root` is made from. */
export function workflowSourceKey(root: string = ROOT): string {
  const hash = createHash('sha256');
  for (const name of BUNDLED_PACKAGES) {
    hash.update(`package ${name} ${installedVersion(name, root)}\n`);
  }
  for (const dir of WORKFLOW_SOURCE_DIRS) {
    for (const path of filesUnder(join(root, dir))) {
      const content = readFileSync(path);
      hash.update(`file ${relative(root, path)} ${content.length}\n`);
      hash.update(content);
    }
  }
  return hash.digest('hex').slice(0, 32);
}

function installedVersion(name: string, root: string): string {
  try {
    const path = require.resolve(`${name}/package.json`, { paths: [root] });
    return (JSON.parse(readFileSync(path, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'missing';
  }
}

/** Every file under `dir`, in a stable order. */
function filesUnder(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}

const quietLogger = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (message: string) => process.stderr.write(`workflow bundle: ${message}\n`),
  error: (message: string) => process.stderr.write(`workflow bundle: ${message}\n`),
};
