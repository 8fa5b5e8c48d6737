/**
 * The schemathesis run of test/integration/schemathesis.test.ts, scaled up: at least `--cases` generated
 * requests (100,000 by default) against a gateway and main worker of its own (no engine workers, so the
 * investigations it starts wait rather than fill the machine with containers), on a Temporal dev server
 * of its own. Prints the cases generated and passed and every server error schemathesis reported.
 *
 *   npm run bench:fuzz [-- --cases 100000 --hours 4 --seed 11]
 *
 * The per-operation example count is derived from the test's measured ratio (100 examples per
 * operation gave about 3,000 cases over the document). Loopback only; needs npm run setup.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config';
import { KeyStore } from '../gateway/keys';
import { createLogger } from '../infra/log';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { ensureSchemathesis, runSchemathesis } from '../test/helpers/schemathesis';

/** Cases schemathesis generated per `--max-examples` unit over Docket's document (the test's run: 100 → ~3,000). */
const CASES_PER_EXAMPLE = 30;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { cases: { type: 'string', default: '100000' }, hours: { type: 'string', default: '4' }, seed: { type: 'string', default: '11' } },
  });
  const cases = Number(values.cases);
  const hours = Number(values.hours);
  if (!Number.isInteger(cases) || cases < 1_000) throw new Error('--cases takes a whole number of at least 1000');
  if (!(hours > 0 && hours <= 24)) throw new Error('--hours takes the most hours the run may take, above 0 and at most 24');
  if (!/^\d+$/.test(values.seed!)) throw new Error('--seed takes a whole number');
  const maxExamples = Math.ceil(cases / CASES_PER_EXAMPLE);

  const command = await ensureSchemathesis();
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-fuzz-'));
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  mkdirSync(join(dir, 'schedules'));
  const config = loadConfig({
    TEMPORAL_ADDRESS: temporal.address,
    DOCKET_DATA_DIR: join(dir, 'data'),
    DOCKET_QUEUE_PREFIX: `fuzz${randomBytes(3).toString('hex')}-`,
    DOCKET_HOST: '127.0.0.1',
    DOCKET_PORT: '0',
    DOCKET_ANONYMOUS: 'none',
    // The fuzzer would otherwise spend most of its requests on 429s.
    DOCKET_RATE_LIMIT: '0',
    DOCKET_LOG_LEVEL: 'error',
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
  });
  process.once('exit', () => {
    if (temporal.process.exitCode === null) temporal.process.kill('SIGKILL');
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const system = await startSystem({ config, log: createLogger('error'), engineWorkers: false, audit: () => undefined });
  try {
    const key = (await new KeyStore(join(config.DOCKET_DATA_DIR, 'keys.json')).create('fuzz', 'admin')).key;
    const junit = join(dir, 'junit.xml');
    process.stdout.write(`fuzz bench: schemathesis with --max-examples ${maxExamples} (about ${cases} cases) against ${system.url}, at most ${hours} h\n`);
    const started = performance.now();
    const { code, output } = await runSchemathesis(command, [
      'run', `${system.url}/openapi.json`,
      '--checks', 'not_a_server_error,status_code_conformance,response_schema_conformance',
      '--header', `Authorization: Bearer ${key}`,
      '--phases', 'examples,coverage,fuzzing,stateful',
      '--max-examples', String(maxExamples),
      '--seed', values.seed!,
      // One worker: Python 3.11's ast module is not thread-safe, and hypothesis parses source while generating.
      '--workers', '1',
      '--request-timeout', '20',
      '--generation-database', 'none',
      '--suppress-health-check', 'all',
      '--continue-on-failure',
      '--no-color',
      '--output-sanitize', 'true',
      '--report', 'junit', '--report-junit-path', junit,
    ], hours * 3_600_000, 'lower --cases or raise --hours');
    const minutes = (performance.now() - started) / 60_000;
    const generated = /(\d+) generated/.exec(output)?.[1];
    const serverErrors = output.split('\n').filter((line) => /server error/i.test(line) && !/^\s*-\s*$/.test(line));
    const failing = [...new Set([...output.matchAll(/^_+ ([A-Z]+ \S+) _+$/gm)].map((match) => match[1]))];
    const tally = [...output.matchAll(/^\s*❌ (.+: \d+)$/gm)].map((match) => match[1]);
    console.log(`fuzz bench: schemathesis exited ${code} after ${minutes.toFixed(1)} min; ${generated ?? 'no'} cases generated`);
    console.log(`  server errors reported: ${serverErrors.length}`);
    for (const line of serverErrors.slice(0, 20)) console.log(`    ${line.trim()}`);
    console.log(`  failures by check: ${tally.length ? tally.join('; ') : 'none'}`);
    console.log(`  operations with a failure: ${failing.length ? failing.join(', ') : 'none'}`);
    if (code !== 0) console.log(`  the end of its report (run again with the same --seed to reproduce):\n${output.slice(-3_000)}`);
    if (generated && Number(generated) < cases) console.log('  fewer cases than asked for: raise --cases (the examples per operation follow it)');
    // A run that sent nothing (an empty document, every operation skipped) passes too; say so.
    if (!existsSync(junit) || !/<testcase /.test(readFileSync(junit, 'utf8'))) console.log('  schemathesis reported no test cases: check the OpenAPI document');
    if (code !== 0) process.exitCode = 1;
  } finally {
    await system.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`fuzz bench: ${(error as Error).message}`);
  process.exit(1);
});
