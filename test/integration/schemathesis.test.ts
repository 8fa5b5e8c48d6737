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
 * Cases per operation in the fuzzing phase (and the stateful phase's scenarios): with the coverage
 * phase's ~1,600, about 3,200 requests over the document's 41 operations, in under four minutes on two
 * cores with a CI run and other work beside (224 s measured).
 */
const MAX_EXAMPLES = 40;
/** Fewer than this and the run did not fuzz what it should (an operation skipped, a phase cut short). */
const MIN_CASES = 3_000;
/** The outer bound, for a request that hangs: schemathesis is killed past it, and the test fails saying so. */
const RUN_LIMIT_MS = 360_000;

describe('the gateway under schemathesis, against its own OpenAPI document', () => {
  let system: TestSystem;
  let command: string;
  let adminKey: string;
  const reports = mkdtempSync(join(tmpdir(), 'docket-schemathesis-'));

  beforeAll(async () => {
    command = await ensureSchemathesis();
    system = await startTestSystem({
      engineWorkers: false,
      env: {
        // No rate limit: the fuzzer would otherwise spend most of its requests on 429s.
        DOCKET_RATE_LIMIT: '0',
        DOCKET_ANONYMOUS: 'none',
        // The fuzzer reuses the ids of investigations it started, which never finish here: every valid
        // ?wait= (up to 60 s) or waitreport atMost (up to 10 minutes) would hold its request that long.
        // The document states this bound, so longer waits are generated as invalid and refused with 400.
        DOCKET_MAX_WAIT: '1s',
      },
    });
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
      // Every operation, every phase: schema examples, boundary and invalid values for every parameter
      // and body field, random requests, and sequences that follow the document's links.
      '--phases', 'examples,coverage,fuzzing,stateful',
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
    ], RUN_LIMIT_MS, 'lower MAX_EXAMPLES, or find the operation that got slow: bench/fuzz.ts prints the time per operation');
    const cases = /(\d+) generated, (\d+) passed/.exec(output);
    const took = /in ([\d.]+)s =+\s*$/m.exec(output)?.[1];
    process.stdout.write(`schemathesis: ${cases ? `${cases[1]} cases, ${cases[2]} passed` : 'no case count in its output'}${took ? ` in ${took} s` : ''}\n`);
    expect({ code, output: code === 0 ? 'passed' : output.slice(-12_000) }).toEqual({ code: 0, output: 'passed' });
    expect(Number(cases?.[1] ?? 0)).toBeGreaterThanOrEqual(MIN_CASES);
    // Guards against a run that passed because it sent nothing (the document empty, every operation skipped).
    expect(readFileSync(junit, 'utf8')).toMatch(/<testcase /);
  }, RUN_LIMIT_MS + 60_000);

  it('holds no read past DOCKET_MAX_WAIT: a longer ?wait= is refused with 400 naming it, as the document says, and waitreport answers a waiting job', async () => {
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${system.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    };
    const document = (await call('GET', '/openapi.json')).body;
    const wait = document.paths['/result/{id}'].get.parameters.find((parameter: { name: string }) => parameter.name === 'wait');
    expect(wait.description).toContain('at most 1s on this gateway');
    for (const path of ['/result/some-job?wait=2s', '/v1/investigations/some-job?wait=1001ms']) {
      const refused = await call('GET', path);
      expect(refused.status).toBe(400);
      expect(refused.body.error.message).toContain('wait is at most 1s on this gateway (DOCKET_MAX_WAIT)');
    }
    // No engine worker runs here, so the job waits for ever: without the bound, atMost=Inf would hold the read 10 minutes.
    const [analyzer] = (await call('GET', '/api/analyzer/type/ip')).body as unknown as Array<{ id: string }>;
    const job = await call('POST', `/api/analyzer/${analyzer.id}/run`, { dataType: 'ip', data: '203.0.113.5' });
    expect(job.status).toBe(200);
    const report = await call('GET', `/api/job/${job.body.id}/waitreport?atMost=Inf`);
    expect(report).toMatchObject({ status: 200, body: { id: job.body.id, status: 'Waiting', report: 'Waiting' } });
  }, 60_000);
});
