/**
 * Builds the sample engine images offline, FROM docket/base:bookworm: first the shared bases in
 * engines/_base/<name>/ (their base.yaml names the image), then every engines/<name>/ folder with an
 * engine.yaml and a Dockerfile. Present images are kept unless --force.
 * Usage: npm run engines:build [-- --force] [-- name...]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { EngineRegistry } from '../infra/engine-registry';
import { loadConfig } from '../core/config';
import { ensureImage } from './lib/images';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const force = args.includes('--force');
  const only = args.filter((arg) => !arg.startsWith('--'));
  const config = loadConfig(process.env);
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  for (const error of registry.errors) console.error(`engines: skipped ${error}`);
  let failed = 0;
  const bases = join(config.DOCKET_ENGINES_DIR, '_base');
  for (const name of existsSync(bases) ? readdirSync(bases).sort() : []) {
    const dir = join(bases, name);
    const { image } = parseYaml(readFileSync(join(dir, 'base.yaml'), 'utf8')) as { image: string };
    try {
      if ((await ensureImage(image, dir, { force })) === 'built') console.log(`engines: built base ${image}`);
    } catch (error) {
      failed += 1;
      console.error(`engines: cannot build base ${image}: ${(error as Error).message}`);
    }
  }
  for (const { manifest, file } of registry.list()) {
    if (only.length && !only.includes(manifest.name)) continue;
    const started = Date.now();
    try {
      const outcome = await ensureImage(manifest.image, dirname(file), { force });
      if (outcome === 'built') console.log(`engines: built ${manifest.image} in ${((Date.now() - started) / 1000).toFixed(0)}s`);
    } catch (error) {
      failed += 1;
      console.error(`engines: cannot build ${manifest.image} for ${manifest.name}: ${(error as Error).message}`);
    }
  }
  if (failed) process.exit(1);
}

main().catch((error) => {
  console.error(`engines: ${(error as Error).message}`);
  process.exit(1);
});
