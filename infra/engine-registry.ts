import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type EngineManifest, validateManifest } from '../core/engine-manifest';

export interface LoadedEngine {
  manifest: EngineManifest;
  /** The manifest file, relative to the engines folder. */
  file: string;
}

/**
 * The engines declared by `<dir>/<name>/engine.yaml`. A bad manifest is reported and skipped so the
 * others still load; `reload()` re-reads the folder, and jobs started after it use the new manifests.
 */
export class EngineRegistry {
  private engines = new Map<string, LoadedEngine>();
  errors: string[] = [];

  constructor(readonly dir: string) {}

  static async load(dir: string): Promise<EngineRegistry> {
    const registry = new EngineRegistry(dir);
    await registry.reload();
    return registry;
  }

  async reload(): Promise<void> {
    const engines = new Map<string, LoadedEngine>();
    const errors: string[] = [];
    for (const file of await manifestFiles(this.dir)) {
      const source = relative(process.cwd(), file) || file;
      let doc: unknown;
      try {
        doc = parseYaml(await readFile(file, 'utf8'));
      } catch (error) {
        errors.push(`${source}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
        continue;
      }
      const result = validateManifest(doc, source);
      if (!result.ok) {
        errors.push(result.error);
        continue;
      }
      const previous = engines.get(result.manifest.name);
      if (previous) {
        errors.push(`${source}: name: engine ${result.manifest.name} is already declared by ${previous.file}`);
        continue;
      }
      engines.set(result.manifest.name, { manifest: result.manifest, file: source });
    }
    this.engines = engines;
    this.errors = errors;
  }

  get(name: string): EngineManifest | undefined {
    return this.engines.get(name)?.manifest;
  }

  list(): LoadedEngine[] {
    return [...this.engines.values()].sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
  }

  names(): string[] {
    return this.list().map((engine) => engine.manifest.name);
  }
}

async function manifestFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new Error(`cannot read the engines folder ${dir}: ${(error as Error).message} (set DOCKET_ENGINES_DIR)`);
  }
  const files: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const folder = join(dir, entry.name);
    const names = await readdir(folder);
    if (names.includes('engine.yaml')) files.push(join(folder, 'engine.yaml'));
  }
  return files.sort();
}
