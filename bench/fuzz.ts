/**
 * The schemathesis run of test/integration/schemathesis.test.ts, scaled up: every phase, sized for
 * `--cases` generated requests (100,000 by default), against a gateway and main worker of its own (no
 * engine workers, so the investigations it starts wait rather than fill the machine with containers),
 * on a Temporal dev server of its own. `--hours` is schemathesis's time budget (--max-time): it stops
 * there and reports, and when a pass ends sooner the fuzzing and stateful phases draw new cases until
 * the budget is spent. Prints the cases, the failures by check, server errors, requests that got no
 * answer, and the operations that took the most time (from schemathesis's NDJSON report).
 *
 *   npm run bench:fuzz [-- --cases 100000 --hours 4 --seed 11]
 *
 * The per-operation example count comes from the test's measured ratio (about 1,600 coverage cases,
 * then about 40 per example per operation). Loopback only; needs npm run setup.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config';
import { KeyStore } from '../gateway/keys';
import { createLogger } from '../infra/log';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { ensureSchemathesis, runSchemathesis } from '../test/helpers/schemathesis';

/** Cases over Docket's document per `--max-examples` unit (fuzzing and stateful), beside the coverage phase's (the test's runs: 30 → 2,820, 50 → 3,643). */
const CASES_PER_EXAMPLE = 40;
const COVERAGE_CASES = 1_600;
/** What the report leaves before schemathesis's own budget ends: its start, the document, the summary. */
const MARGIN_S = 120;

interface Tally {
  cases: number;
  failures: Map<string, number>;
  failingOperations: Set<string>;
  serverErrors: Map<string, number>;
  unanswered: Map<string, number>;
  seconds: Map<string, number>;
}

/** What schemathesis's NDJSON events say: each scenario's cases, check results and responses. */
async function readReport(path: string): Promise<Tally> {
  const tally: Tally = { cases: 0, failures: new Map(), failingOperations: new Set(), serverErrors: new Map(), unanswered: new Map(), seconds: new Map() };
  const add = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);
  if (!existsSync(path)) return tally;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    const event = JSON.parse(line) as Record<string, any>;
    if (event.NonFatalError) add(tally.unanswered, `${event.NonFatalError.label}: ${String(event.NonFatalError.value?.type ?? 'error')}`);
    const finished = event.ScenarioFinished;
    if (!finished?.recorder) continue;
    const label = String(finished.recorder.label);
    tally.cases += Object.keys(finished.recorder.cases ?? {}).length;
    add(tally.seconds, label, Number(finished.elapsed_time) || 0);
    for (const results of Object.values(finished.recorder.checks ?? {}) as Array<Array<{ name: string; status: string }>>) {
      for (const check of results.filter((result) => result.status === 'failure')) {
        add(tally.failures, check.name);
        tally.failingOperations.add(label);
      }
    }
    for (const interaction of Object.values(finished.recorder.interactions ?? {}) as Array<{ response?: { status_code?: number } }>) {
      const status = interaction.response?.status_code ?? 0;
      if (status >= 500) add(tally.serverErrors, `${label} → ${status}`);
    }
  }
  return tally;
}

const listed = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).map(([key, count]) => `${key}: ${count}`).join('; ') || 'none';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { cases: { type: 'string', default: '100000' }, hours: { type: 'string', default: '4' }, seed: { type: 'string', default: '11' } },
  });
  const cases = Number(values.cases);
  const hours = Number(values.hours);
  if (!Number.isInteger(cases) || cases < 1_000) throw new Error('--cases takes a whole number of at least 1000');
  if (!(hours > 0 && hours <= 24)) throw new Error('--hours takes the time budget in hours, above 0 and at most 24');
  if (!/^\d+$/.test(values.seed!)) throw new Error('--seed takes a whole number');
  if (hours * 3600 <= MARGIN_S * 2) throw new Error(`--hours must leave schemathesis more than ${MARGIN_S * 2} s`);
  const maxExamples = Math.ceil(Math.max(cases - COVERAGE_CASES, CASES_PER_EXAMPLE) / CASES_PER_EXAMPLE);
  const budgetS = Math.floor(hours * 3600) - MARGIN_S;

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
    // As in the test: the investigations the fuzzer starts never finish, so every valid wait would be held whole.
    DOCKET_MAX_WAIT: '1s',
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
    const ndjson = join(dir, 'events.ndjson');
    process.stdout.write(`fuzz bench: schemathesis with --max-examples ${maxExamples} (about ${cases} cases a pass) against ${system.url}, for ${hours} h\n`);
    const started = performance.now();
    const { code, output } = await runSchemathesis(command, [
      'run', `${system.url}/openapi.json`,
      '--checks', 'not_a_server_error,status_code_conformance,response_schema_conformance',
      '--header', `Authorization: Bearer ${key}`,
      '--phases', 'examples,coverage,fuzzing,stateful',
      '--max-examples', String(maxExamples),
      '--max-time', String(budgetS),
      '--seed', values.seed!,
      // One worker: Python 3.11's ast module is not thread-safe, and hypothesis parses source while generating.
      '--workers', '1',
      '--request-timeout', '20',
      '--generation-database', 'none',
      '--suppress-health-check', 'all',
      '--continue-on-failure',
      '--no-color',
      '--output-sanitize', 'true',
      '--report', 'junit,ndjson', '--report-junit-path', junit, '--report-ndjson-path', ndjson,
    ], (budgetS + MARGIN_S) * 1000, 'schemathesis ran past its own --max-time: look for a request that hangs');
    const minutes = (performance.now() - started) / 60_000;
    const tally = await readReport(ndjson);
    const slowest = [...tally.seconds].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([label, seconds]) => `${label} ${seconds.toFixed(0)} s`);
    console.log(`fuzz bench: schemathesis exited ${code} after ${minutes.toFixed(1)} min; ${tally.cases} cases (${(tally.cases / (minutes * 60)).toFixed(1)}/s)`);
    console.log(`  failures by check: ${listed(tally.failures)}`);
    console.log(`  server errors (5xx answers): ${listed(tally.serverErrors)}`);
    console.log(`  requests without an answer (timeouts, resets): ${listed(tally.unanswered)}`);
    console.log(`  operations with a failure: ${tally.failingOperations.size ? [...tally.failingOperations].join(', ') : 'none'}`);
    console.log(`  most time: ${slowest.join('; ')}`);
    if (code !== 0) console.log(`  the end of its report (run again with the same --seed to reproduce):\n${output.slice(-3_000)}`);
    if (tally.cases < cases) console.log('  fewer cases than asked for: raise --hours');
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
