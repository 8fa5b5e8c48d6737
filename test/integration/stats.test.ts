import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { KeyStore } from '../../gateway/keys';
import { docker } from '../helpers/engines';
import { enginesFolder, writeApprovalPolicy } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * GET /v1/stats and GET /v1/compliance/findings against a whole Docket: real Temporal (visibility
 * and reports), real engine containers, one engine whose image does not exist, one investigation
 * left waiting for approval, and compliance findings skipped and remediated by an unknown bot.
 */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const blocklistVolume = `docket-blocklist-stats-${randomBytes(4).toString('hex')}`;
const policyFile = join(tmpdir(), `docket-stats-policy-${randomBytes(4).toString('hex')}.yaml`);
const accountsFile = join(tmpdir(), `docket-stats-accounts-${randomBytes(4).toString('hex')}.yaml`);
const ACCOUNT = '210987654321';

describe('the stats and findings routes', () => {
  let docket: TestSystem;
  let engines: string;
  let readKey: string;
  let respondKey: string;
  let waitingId: string;
  let finishedId: string;

  const call = async (path: string, init: RequestInit & { key?: string | null } = {}) => {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
    if (init.key !== null) headers.authorization = `Bearer ${init.key ?? readKey}`;
    const response = await fetch(`${docket.baseUrl}${path}`, { ...init, headers });
    return { status: response.status, body: (await response.json()) as any };
  };
  const investigate = async (body: Record<string, unknown>) => {
    const answer = await call('/v1/investigations', { method: 'POST', key: respondKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(answer.status).toBe(202);
    return answer.body.id as string;
  };
  const finding = (complianceTags: string, second: number) => ({
    reportTime: new Date(Date.UTC(2026, 1, 3, 9, 0, second)).toISOString(),
    status: 'Failed',
    policy: { name: 'AWS CIS Foundations' },
    rule: { name: `stats rule ${second}`, ruleId: `D9.STATS.${second}`, complianceTags, severity: 'High' },
    account: { id: ACCOUNT, name: 'stats account', vendor: 'aws' },
    region: 'N. Virginia',
    entity: { id: `i-0stats${second}`, name: `stats-instance-${second}`, region: 'us_east_1', type: 'Instance' },
  });

  beforeAll(async () => {
    writeApprovalPolicy(policyFile);
    writeFileSync(accountsFile, stringify({ accounts: { [ACCOUNT]: { name: 'stats account', region: 'us-east-1', roleArn: `arn:aws:iam::${ACCOUNT}:role/docket-bots` } } }));
    engines = enginesFolder([
      sample('ioc-lookup'),
      { ...sample('blocklist'), volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
      // An image nobody built: its jobs fail as "image missing", a class of their own.
      { name: 'ghost', kind: 'analyzer', image: 'docket/ghost-never-built:0.0', accepts: ['ip'], protocol: 'cortex', timeout: '30s' },
    ]);
    docket = await startTestSystem({
      enginesDir: engines,
      env: { DOCKET_POLICY_FILE: policyFile, DOCKET_ACCOUNTS_FILE: accountsFile, DOCKET_ANONYMOUS: 'none' },
    });
    const keys = new KeyStore(join(docket.dataDir, 'keys.json'));
    readKey = (await keys.create('stats-reader', 'read')).key;
    respondKey = (await keys.create('stats-responder', 'respond')).key;

    waitingId = await investigate({ text: 'phishing at hxxps://evil[.]example/stats' });
    finishedId = await investigate({ observables: [{ type: 'ip', data: '198.51.100.77' }] });
    await poll(() => call(`/v1/investigations/${finishedId}`), (answer) => answer.body.state === 'completed', 'the ip investigation to complete');
    await poll(() => call(`/v1/investigations/${waitingId}`), (answer) => answer.body.status?.responses?.some((r: any) => r.approval.state === 'pending'), 'the approval to wait');
  });

  afterAll(async () => {
    await docket?.close();
    rmSync(policyFile, { force: true });
    rmSync(accountsFile, { force: true });
    if (engines) rmSync(engines, { recursive: true, force: true });
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  it('counts this installation\'s investigations per bucket by verdict, engine jobs by outcome with run times, and failures by class', async () => {
    const { status, body } = await poll(() => call('/v1/stats?window=24h'), (answer) => answer.body.engines?.reportsRead >= 1, 'the finished report to be read');
    expect(status).toBe(200);
    expect(body).toMatchObject({ window: '24h', bucket: 'hour' });
    // Only this installation's task queue: the other test files' investigations on the same server are not counted.
    expect(body.investigations.total).toBe(2);
    expect(body.investigations.counted).toBe(2);
    expect(body.investigations.byStatus).toEqual({ Running: 1, Completed: 1 });
    const sums = (verdict: string) => body.investigations.buckets.reduce((n: number, bucket: any) => n + bucket.counts[verdict], 0);
    expect(sums('malicious') + sums('suspicious') + sums('safe') + sums('info') + sums('none')).toBe(2);
    expect(sums('malicious')).toBe(1);
    expect(body.investigations.buckets.length).toBeGreaterThanOrEqual(24);

    const byEngine = new Map(body.engines.jobs.map((job: any) => [job.engine, job]));
    expect(byEngine.get('ioc-lookup')).toMatchObject({ outcomes: { success: 1, failure: 0, timeout: 0, error: 0 } });
    expect((byEngine.get('ioc-lookup') as any).medianMs).toBeGreaterThan(0);
    expect((byEngine.get('ioc-lookup') as any).p95Ms).toBeGreaterThanOrEqual((byEngine.get('ioc-lookup') as any).medianMs);
    expect(byEngine.get('ghost')).toMatchObject({ outcomes: { success: 0, error: 1 }, recent: [expect.objectContaining({ workflowId: finishedId, status: 'error' })] });
    // A job whose container never started has no run time.
    expect((byEngine.get('ghost') as any).medianMs).toBeNull();
    const failures = new Map(body.failures.map((row: any) => [row.class, row.count]));
    expect(failures.get('image missing')).toBe(1);
    expect(failures.get('infrastructure error')).toBe(0);
    expect(failures.get('investigation failed')).toBe(0);
  });

  it('lists the approvals waiting, with the responder, what it would act on and since when', async () => {
    const { body } = await call('/v1/stats?window=7d');
    expect(body.bucket).toBe('day');
    expect(body.approvals.unanswered).toBe(0);
    expect(body.approvals.waiting).toEqual([expect.objectContaining({
      workflowId: waitingId, workflowType: 'investigation', responder: 'blocklist', subject: 'url https://evil.example/stats', rule: 'block malicious web destinations',
    })]);
    expect(Date.parse(body.approvals.waiting[0].since)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(body.approvals.waiting[0].expiresAt)).toBeGreaterThan(Date.now());
  });

  it('refuses a window it does not know with a 400 naming the choices, and a caller without a key with a 401', async () => {
    const bad = await call('/v1/stats?window=1y');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/window/);
    expect(bad.body.error.message).toMatch(/24h/);
    const anonymous = await call('/v1/stats', { key: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.message).toContain('read role');
  });

  it('lists compliance findings: remediations with each bot\'s outcome, and the findings skipped with the reason', async () => {
    const sent = await call('/v1/events/compliance', {
      method: 'POST', key: respondKey, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ findings: [finding('CIS 1.1', 1), finding('AUTO: no_such_bot now', 2)] }),
    });
    expect({ status: sent.status, error: sent.body.error }).toEqual({ status: 202, error: undefined });
    expect(sent.body.findings.map((answer: any) => answer.result)).toEqual(['skipped', 'started']);
    const remediation = sent.body.findings[1].workflowId;

    const { status, body } = await poll(
      () => call('/v1/compliance/findings?window=24h'),
      (answer) => answer.body.remediations?.some((row: any) => row.workflowId === remediation && row.status === 'Completed'),
      'the remediation to complete',
    );
    expect(status).toBe(200);
    expect(body.remediations).toEqual([expect.objectContaining({
      workflowId: remediation, outcome: 'Fail', rule: 'stats rule 2', accountId: ACCOUNT,
      bots: [expect.objectContaining({ bot: 'no_such_bot', params: ['now'], outcome: 'failed', message: expect.stringContaining('unknown bot no_such_bot') })],
    })]);
    expect(body.byBot).toEqual([{ bot: 'no_such_bot', passed: 0, failed: 1 }]);
    expect(body.unstarted.findings).toEqual([expect.objectContaining({ result: 'skipped', rule: 'stats rule 1', reason: expect.stringContaining('AUTO') })]);

    // An unknown bot ran no container, so the stats count no engine job for it.
    const stats = await call('/v1/stats?window=24h');
    expect(stats.body.engines.jobs.map((job: any) => job.engine)).not.toContain('no_such_bot');
  });
});
