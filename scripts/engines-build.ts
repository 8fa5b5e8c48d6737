/**
 * Builds the sample engine images offline, FROM docket/base:bookworm: first the shared bases in
 * engines/_base/<name>/ (their base.yaml names the image), then every engines/<name>/ folder with an
 * engine.yaml and a Dockerfile. An image is kept when its label holds the hash of its folder as it is
 * now and of the images it starts FROM (scripts/lib/engine-images.ts): one list of the local images
 * tells, without running docker build; a changed folder or base is rebuilt. --force rebuilds all.
 * Usage: npm run engines:build [-- --force] [-- name...]
 */
import { loadConfig } from '../core/config';
import { buildEngineImages } from './lib/engine-images';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const config = loadConfig(process.env);
  const failed = await buildEngineImages({
    enginesDir: config.DOCKET_ENGINES_DIR,
    force: args.includes('--force'),
    only: args.filter((arg) => !arg.startsWith('--')),
  });
  if (failed) process.exit(1);
}

main().catch((error) => {
  console.error(`engines: ${(error as Error).message}`);
  process.exit(1);
});
