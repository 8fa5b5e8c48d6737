/**
 * `node test/helpers/cruise-layers.mjs <config> <folder>…`, run in the folder the paths are relative
 * to: cruises the folders with dependency-cruiser's API and the rules of <config>, and prints the
 * violations as JSON ([{ from, to, rule }]). dependency-cruiser is an ES module, which jest's
 * CommonJS runtime cannot load, so test/unit/layers.test.ts runs this in a process of its own.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { cruise } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const [configFile, ...folders] = process.argv.slice(2);
if (!configFile || !folders.length) {
  console.error('usage: node cruise-layers.mjs <dependency-cruiser config> <folder>…');
  process.exit(2);
}
const options = await extractDepcruiseOptions(resolve(configFile));
const tsConfigFile = options.tsConfig?.fileName;
const transpile = tsConfigFile && existsSync(tsConfigFile) ? { tsConfig: extractTSConfig(tsConfigFile) } : {};
if (!transpile.tsConfig) delete options.tsConfig;
const result = await cruise(folders.filter((folder) => existsSync(folder)), { ...options, validate: true, outputType: 'json' }, undefined, transpile);
const output = typeof result.output === 'string' ? JSON.parse(result.output) : result.output;
const violations = output.summary.violations.map((violation) => ({
  from: violation.from,
  to: violation.cycle?.length ? violation.cycle.map((step) => step.name ?? step).join(' -> ') : violation.to,
  rule: violation.rule.name,
}));
process.stdout.write(JSON.stringify(violations));
