/**
 * Builds the sample engine images offline, FROM docket/base:bookworm: every engines/<name>/ folder
 * with an engine.yaml and a Dockerfile. Present images are kept unless --force.
 * Usage: npm run engines:build [-- --force] [-- name...]
 */
import { dirname } from 'node:path';
import { EngineRegistry } from '../activities/engine-registry';
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
