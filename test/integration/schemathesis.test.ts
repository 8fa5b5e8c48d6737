import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyStore } from '../../gateway/keys';
import { ensureSchemathesis, runSchemathesis } from '../helpers/schemathesis';
import { startTestSystem, type TestSystem } from '../helpers/system';

/**
 * schemathesis generates requests from the live gateway's /openapi.json (valid ones and, on purpose,
 * invalid ones) and checks every answer against the same document: no 5xx, only documented statuses,
 * bodies that match the declared schemas. The gateway and the main worker run for real against the
 * test Temporal server; engine workers do not, so the investigations it starts wait instead of
 * filling the machine with containers.
 */

/**
 * Cases per operation and phase: a few thousand requests over the document's ~41 operations, in about
 * two minutes on two idle cores.
 */
const MAX_EXAMPLES = 30;
/** The outer bound: schemathesis is killed past it, and the test fails saying so. */
const RUN_LIMIT_MS = 240_000;

describe('the gateway under schemathesis, against its own OpenAPI document', () => {
  let system: TestSystem;
  let command: string;
  let adminKey: string;
  const reports = mkdtempSync(join(tmpdir(), 'docket-schemathesis-'));

  beforeAll(async () => {
    command = await ensureSchemathesis();
    // No rate limit: the fuzzer would otherwise spend most of its requests on 429s.
    system = await startTestSystem({ engineWorkers: false, env: { DOCKET_RATE_LIMIT: '0', DOCKET_ANONYMOUS: 'none' } });
    adminKey = (await new KeyStore(join(system.dataDir, 'keys.json')).create('schemathesis', 'admin')).key;
  });

  afterAll(async () => {
    await system?.close();
    rmSync(reports, { recursive: true, force: true });
  });

  it('answers thousands of generated requests with an admin key without a server error, with documented statuses and bodies that match the document', async () => {
    const junit = join(reports, 'junit.xml');
    const { code, output } = await runSchemathesis(command, [
      'run', `${system.baseUrl}/openapi.json`,
      '--checks', 'not_a_server_error,status_code_conformance,response_schema_conformance',
      '--header', `Authorization: Bearer ${adminKey}`,
      // The examples and coverage phases only (boundary and invalid values for every parameter and
      // body field): on the grown document the random fuzzing phase did not finish within this bound,
      // and the stateful phase reads back investigations as long polls; npm run bench:fuzz runs both.
      '--phases', 'examples,coverage',
      // Reads whose cost grows with every workflow the fuzzer starts (the dashboard's window, Cortex job
      // scans over the newest 200 jobs), reads that wait on purpose, and Cortex's recursive search
      // queries (generating them is what takes the time); each has its own integration test.
      '--exclude-path-regex', '^/(v1/stats|api/datastore/|api/[a-z]+/_search|api/job/[^/]+/waitreport)',
      '--max-examples', String(MAX_EXAMPLES),
      '--seed', '11',
      // One worker: Python 3.11's ast module is not thread-safe, and hypothesis parses source while generating.
      '--workers', '1',
      '--request-timeout', '20',
      '--generation-database', 'none',
      '--suppress-health-check', 'all',
      '--continue-on-failure',
      '--no-color',
      '--output-sanitize', 'true',
      '--report', 'junit', '--report-junit-path', junit,
    ], RUN_LIMIT_MS, 'lower MAX_EXAMPLES');
    const cases = /(\d+) generated, (\d+) passed/.exec(output);
    process.stdout.write(`schemathesis: ${cases ? `${cases[1]} cases, ${cases[2]} passed` : 'no case count in its output'}\n`);
    expect({ code, output: code === 0 ? 'passed' : output.slice(-12_000) }).toEqual({ code: 0, output: 'passed' });
    // Guards against a run that passed because it sent nothing (the document empty, every operation skipped).
    expect(readFileSync(junit, 'utf8')).toMatch(/<testcase /);
  }, RUN_LIMIT_MS + 60_000);
});
