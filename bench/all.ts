/**
 * `npm run bench`: every benchmark in turn (one at a time: each measures against a baseline on the
 * same machine, and two at once would measure each other), then one table of all their figures,
 * as the README's Benchmarks section shows it. Benchmarks with scripts of their own (chaos, load,
 * soak, fuzz) are not part of it.
 *
 *   npm run bench [-- latency orchestration]   # only these
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Figure, FIGURES_FILE_ENV, printFigures } from './lib/table';

const BENCHES: Record<string, string> = {
  latency: 'latency.ts',
  orchestration: 'orchestration.ts',
  engines: 'engines.ts',
  upload: 'upload.ts',
  slack: 'slack-ack.ts',
  restart: 'restart.ts',
};

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !Object.hasOwn(BENCHES, name));
  if (unknown.length) throw new Error(`no benchmark named ${unknown.join(', ')}; the benchmarks are: ${Object.keys(BENCHES).join(', ')}`);
  const names = asked.length ? asked : Object.keys(BENCHES);
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-all-'));
  const file = join(dir, 'figures.jsonl');
  const failed: string[] = [];
  try {
    for (const name of names) {
      process.stdout.write(`\n== bench ${name}\n`);
      const code = await run(join(__dirname, BENCHES[name]), file);
      if (code !== 0) failed.push(`${name} (exit ${code})`);
    }
    const figures = existsSync(file)
      ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Figure)
      : [];
    process.stdout.write(`\n== all figures (${new Date().toISOString().slice(0, 10)})\n`);
    printFigures(figures);
    if (failed.length) {
      process.stdout.write(`failed: ${failed.join(', ')}; their figures are missing above\n`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(script: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: 'inherit', env: { ...process.env, [FIGURES_FILE_ENV]: file },
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

main().catch((error) => {
  console.error(`bench: ${(error as Error).message}`);
  process.exit(1);
});
