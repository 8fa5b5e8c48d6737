/**
 * `npm run engines -- list`: the engines the manifests declare, the image each one runs now, and the
 * manifests that were skipped (what `GET /v1/engines` answers, for a terminal).
 */
import Docker from 'dockerode';
import { EngineRegistry } from '../infra/engine-registry';
import { ConfigError, loadConfig } from '../core/config';
import { formatBytes } from '../core/units';
import { listEngines } from '../gateway/engine-routes';
import { table } from './lib/table';

async function main(argv: string[]): Promise<void> {
  if (argv[0] !== 'list' || argv.length > 1) throw new ConfigError('usage: npm run engines -- list');
  const config = loadConfig(process.env);
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  const { engines, errors } = await listEngines(registry, new Docker());
  const rows = engines.map((engine) => [
    engine.name,
    engine.kind,
    engine.accepts.join(','),
    engine.protocol,
    engine.image,
    engine.imageId ? engine.imageId.replace(/^sha256:/, '').slice(0, 12) : '',
    engine.imagePresent === null ? 'unknown' : engine.imagePresent ? 'yes' : 'MISSING',
    String(engine.concurrency),
    `${engine.timeout / 1000}s`,
    formatBytes(engine.sizelimit),
  ]);
  console.log(table(['NAME', 'KIND', 'ACCEPTS', 'PROTOCOL', 'IMAGE', 'IMAGE ID', 'PRESENT', 'CONC', 'TIMEOUT', 'SIZELIMIT'], rows));
  const unknown = engines.find((engine) => engine.imageError);
  if (unknown) console.log(`\nDocker: ${unknown.imageError}`);
  if (engines.some((engine) => engine.imagePresent === false)) console.log('\nmissing images: npm run engines:build');
  for (const error of errors) console.log(`skipped ${error}`);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
