import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import Docker from 'dockerode';
import { parse as parseYaml } from 'yaml';
import { EngineRegistry } from '../../infra/engine-registry';
import { run } from './images';

/**
 * The label an engine image carries with the hash of what it was built from. Whether an image is up to
 * date is then one list of the local images (one Docker API call for every engine) compared with
 * hashes of the build folders, where `docker build` on a full layer cache took seconds per image.
 */
export const CONTEXT_LABEL = 'org.docket.context-sha256';

/** The offline base every sample engine starts FROM (provision.sh's base step makes it: BASE_IMAGE there). */
export const BASE_IMAGE = 'docket/base:bookworm';

/** What the local Docker engine holds, by tag: the image's id and its context label. */
export type LocalImages = Map<string, { id: string; context?: string }>;

export async function localImages(docker: Docker): Promise<LocalImages> {
  const images: LocalImages = new Map();
  for (const image of await docker.listImages()) {
    for (const tag of image.RepoTags ?? []) images.set(tag, { id: image.Id, context: image.Labels?.[CONTEXT_LABEL] });
  }
  return images;
}

/** `name` as Docker lists it: a tag defaults to latest. */
function withTag(image: string): string {
  const slash = image.lastIndexOf('/');
  return image.slice(slash + 1).includes(':') || image.includes('@') ? image : `${image}:latest`;
}

/**
 * A hash of everything an image built from `dir` depends on: every file's path and content (the
 * Dockerfile among them) and the id of each image its FROM lines name, so an image is rebuilt when
 * a base it starts from (docket/base, a shared engine base) was rebuilt.
 */
export function contextKey(dir: string, images: LocalImages): string {
  const hash = createHash('sha256');
  for (const path of filesUnder(dir)) {
    if (lstatSync(path).isSymbolicLink()) {
      hash.update(`link ${relative(dir, path)} ${readlinkSync(path)}\n`);
      continue;
    }
    const content = readFileSync(path);
    hash.update(`file ${relative(dir, path)} ${content.length}\n`);
    hash.update(content);
  }
  for (const from of fromImages(readFileSync(join(dir, 'Dockerfile'), 'utf8'))) {
    hash.update(`from ${from} ${images.get(withTag(from))?.id ?? 'not local'}\n`);
  }
  return hash.digest('hex');
}

/** The images a Dockerfile's FROM lines name (not its own stages). */
export function fromImages(dockerfile: string): string[] {
  const stages = new Set<string>();
  const found: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0]?.toUpperCase() !== 'FROM') continue;
    const rest = words.slice(1).filter((word) => !word.startsWith('--'));
    const [image, as, stage] = rest;
    if (!image) continue;
    if (!stages.has(image.toLowerCase())) found.push(image);
    if (as?.toUpperCase() === 'AS' && stage) stages.add(stage.toLowerCase());
  }
  return found;
}

/**
 * Builds `image` from `dir` unless the local image carries the hash of `dir` as it is now (or `force`).
 * An image built before the label existed, or by hand, is built once more (from Docker's layer cache).
 */
export async function ensureEngineImage(image: string, dir: string, images: LocalImages, options: { force?: boolean } = {}): Promise<'built' | 'present'> {
  if (!existsSync(join(dir, 'Dockerfile'))) throw new Error(`no Dockerfile in ${dir} to build ${image} from`);
  const key = contextKey(dir, images);
  if (!options.force && images.get(withTag(image))?.context === key) return 'present';
  await run('docker', ['build', '--quiet', '--label', `${CONTEXT_LABEL}=${key}`, '--tag', image, dir]);
  return 'built';
}

/** Every file under `dir` in a stable order (symbolic links are not followed, as docker build copies them as links). */
function filesUnder(dir: string): string[] {
  const files: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path));
    else files.push(path);
  }
  return files;
}

export interface BuildEngineImagesOptions {
  enginesDir: string;
  /** Rebuild every image, up to date or not. */
  force?: boolean;
  /** Only these engines (the shared bases are always checked). */
  only?: string[];
  docker?: Docker;
}

/**
 * Builds what is out of date: first the shared bases in `<enginesDir>/_base/<name>/` (their base.yaml
 * names the image), then every engine folder with an engine.yaml and a Dockerfile. Says on stdout what
 * it built and on stderr what it could not; resolves to how many images could not be built.
 */
export async function buildEngineImages(options: BuildEngineImagesOptions): Promise<number> {
  const { enginesDir, force = false, only = [] } = options;
  const docker = options.docker ?? new Docker();
  const registry = await EngineRegistry.load(enginesDir);
  for (const error of registry.errors) console.error(`engines: skipped ${error}`);
  let images = await localImages(docker);
  let failed = 0;
  const bases = join(enginesDir, '_base');
  for (const name of existsSync(bases) ? readdirSync(bases).sort() : []) {
    const dir = join(bases, name);
    try {
      const { image } = parseYaml(readFileSync(join(dir, 'base.yaml'), 'utf8')) as { image: string };
      if ((await ensureEngineImage(image, dir, images, { force })) === 'built') {
        console.log(`engines: built base ${image}`);
        // The engines that start FROM it hash its new id.
        images = await localImages(docker);
      }
    } catch (error) {
      failed += 1;
      console.error(`engines: cannot build the base in ${dir}: ${(error as Error).message}`);
    }
  }
  for (const { manifest, file } of registry.list()) {
    if (only.length && !only.includes(manifest.name)) continue;
    const started = Date.now();
    try {
      const outcome = await ensureEngineImage(manifest.image, dirname(file), images, { force });
      if (outcome === 'built') console.log(`engines: built ${manifest.image} in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    } catch (error) {
      failed += 1;
      console.error(`engines: cannot build ${manifest.image} for ${manifest.name}: ${(error as Error).message}`);
    }
  }
  return failed;
}
