/**
 * `npm run engines -- list`: the engines the manifests declare, the image each one runs now, and the
 * manifests that were skipped (what `GET /v1/engines` answers, for a terminal).
 * `npm run engines -- import <flavor.json>...`: Cortex-Analyzers' flavor files as engine manifests.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import { createRunners } from '../activities/runners';
import { FsBlobStore } from '../infra/blob-store-fs';
import { EngineRegistry } from '../infra/engine-registry';
import { silentLogger } from '../infra/log';
import { ConfigError, loadConfig } from '../core/config';
import { CortexFlavor, flavorToManifest } from '../core/cortex-flavor';
import { describeIssues, validateManifest } from '../core/engine-manifest';
import { formatBytes } from '../core/units';
import { listEngines } from '../gateway/engine-routes';
import { table } from './lib/table';

const USAGE = [
  'usage: npm run engines -- list',
  '       npm run engines -- import [--out DIR] [--offline | --egress] [--kind analyzer|responder] [--force] FLAVOR.json...',
].join('\n');

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'import') return importFlavors(argv.slice(1));
  if (argv[0] !== 'list' || argv.length > 1) throw new ConfigError(USAGE);
  const config = loadConfig(process.env);
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  // Listing only asks each runner what an engine would run: nothing is stored, so the blob store is never opened.
  const runners = createRunners({
    docker: new Docker(), blobs: new FsBlobStore(join(config.DOCKET_DATA_DIR, 'blobs')), log: silentLogger,
    processRunner: config.DOCKET_PROCESS_RUNNER === 'on',
  });
  const { engines, errors } = await listEngines(registry, runners);
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
  if (unknown) console.log(`\n${unknown.imageError}`);
  if (engines.some((engine) => engine.imagePresent === false)) console.log('\nmissing images: npm run engines:build');
  for (const error of errors) console.log(`skipped ${error}`);
}

/**
 * Writes `<out>/<name>/engine.yaml` for each flavor file, the import's notes as comments above it.
 * Every manifest is validated as Docket loads it before anything is written; an existing one is kept
 * unless --force.
 */
async function importFlavors(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string' }, offline: { type: 'boolean' }, egress: { type: 'boolean' }, kind: { type: 'string' }, force: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${USAGE}`);
  }
  const { values, positionals: files } = parsed;
  if (!files.length) throw new ConfigError(`name at least one flavor file\n${USAGE}`);
  if (values.offline && values.egress) throw new ConfigError('--offline and --egress contradict each other: give one');
  if (values.kind !== undefined && values.kind !== 'analyzer' && values.kind !== 'responder') throw new ConfigError(`--kind is analyzer or responder, not ${values.kind}`);
  const out = values.out ?? loadConfig(process.env).DOCKET_ENGINES_DIR;
  const network = values.offline ? 'none' : values.egress ? 'egress' : undefined;
  const planned = files.map((file) => {
    let document: unknown;
    try {
      document = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${file}: not a readable JSON file (${(error as Error).message})`);
    }
    const flavor = CortexFlavor.safeParse(document);
    if (!flavor.success) throw new ConfigError(`${file}: not a Cortex flavor file: ${describeIssues(flavor.error)}`);
    const imported = flavorToManifest(flavor.data, { kind: values.kind as 'analyzer' | 'responder' | undefined, network, path: file });
    const checked = validateManifest(imported.manifest, file);
    if (!checked.ok) throw new ConfigError(`${checked.error} (in the manifest imported from it)`);
    const target = join(out, String(imported.manifest.name), 'engine.yaml');
    if (existsSync(target) && !values.force) throw new ConfigError(`${target} exists: remove it or import with --force; nothing was written`);
    return { file, target, imported };
  });
  for (const { file, target, imported } of planned) {
    const header = [`Imported from the Cortex flavor ${file.split(/[\\/]/).pop()} by npm run engines -- import.`, ...imported.notes];
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(target, `${header.map((line) => `# ${line}`).join('\n')}\n${stringify(imported.manifest)}`);
    console.log(`${target}: ${imported.manifest.kind} ${imported.manifest.name}, network ${imported.manifest.network}`);
  }
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
