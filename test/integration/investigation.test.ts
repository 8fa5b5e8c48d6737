import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { signWebhook } from '../../activities/webhook';
import { KeyStore } from '../../gateway/keys';
import { buildTestImage, docker, leftovers, readVolumeFile } from '../helpers/engines';
import { enginesFolder, getJson, writeApprovalPolicy } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';
import { startWebhookReceiver } from '../helpers/webhook-receiver';

/** The whole investigation on real Temporal and real engines: parse, analyze, verdict, respond, notify. */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const blocklistVolume = `docket-blocklist-test-${randomBytes(4).toString('hex')}`;
const policyFile = join(tmpdir(), `docket-policy-${randomBytes(4).toString('hex')}.yaml`);
const writePolicy = (expiry: string) => writeApprovalPolicy(policyFile, expiry);

describe('investigations', () => {
  let docket: TestSystem;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    await buildTestImage('hostile', 'docket/test-hostile:1');
    receiver = await startWebhookReceiver();
    writePolicy('1h');
    const engines = enginesFolder([
      sample('ioc-lookup'),
      { ...sample('blocklist'), volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
      { name: 'slow', kind: 'analyzer', image: 'docket/test-hostile:1', accepts: ['other'], protocol: 'stdout', command: ['/hostile', 'loop'], timeout: '10m' },
    ]);
    docket = await startTestSystem({
      enginesDir: engines,
      // Anyone on loopback may start investigations; deciding and cancelling need the respond role.
      env: { DOCKET_POLICY_FILE: policyFile, DOCKET_WEBHOOK_URL: receiver.url, DOCKET_WEBHOOK_SECRET: secret, DOCKET_ANONYMOUS: 'analyze' },
    });
    const store = new KeyStore(join(docket.dataDir, 'keys.json'));
    for (const name of ['alice', 'bob']) keys[name] = (await store.create(name, 'respond')).key;
  });
  afterAll(async () => {
    await docket?.close();
    await receiver?.close();
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  const post = async (path: string, body: unknown, as?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (as) headers.authorization = `Bearer ${keys[as]}`;
    const response = await fetch(`${docket.baseUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as any };
  };
  const investigation = (id: string) => getJson(`${docket.baseUrl}/v1/investigations/${id}`);
  const waitFor = (id: string, done: (body: any) => boolean, what: string) => poll(() => investigation(id), (r) => done(r.body), what);
  const pendingApproval = (id: string) => waitFor(id, (b) => b.status?.responses?.some((r: any) => r.approval.state === 'pending'), 'a pending approval');
  const completed = (id: string) => waitFor(id, (b) => b.state === 'completed', 'the investigation to complete');

  it('extracts a defanged URL and a hash, finds them malicious, waits for approval, blocks the URL and sends a signed report', async () => {
    const text = 'Users reported hxxps://evil[.]example/login?user=bob and an attachment with sha256 '
      + '275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F; the sender also used 198.51.100.77.';
    const started = await post('/v1/investigations', { text });
    expect(started.status).toBe(202);
    const { id } = started.body;

    const waiting = await pendingApproval(id);
    expect(waiting.body.status.verdicts.bySubject).toEqual({
      'url:https://evil.example/login?user=bob': 'malicious',
      'sha256:275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f': 'malicious',
      'ip:198.51.100.77': 'suspicious',
    });
    const [pending] = waiting.body.status.responses;
    expect(pending).toMatchObject({ responder: 'blocklist', observable: { type: 'url', data: 'https://evil.example/login?user=bob' } });

    const anonymous = await post(`/v1/investigations/${id}/approve`, { responseId: pending.id });
    expect(anonymous.status).toBe(401);
    const approved = await post(`/v1/investigations/${id}/approve`, { responseId: pending.id }, 'alice');
    expect(approved.status).toBe(200);
    const done = await completed(id);
    const report = done.body.report;
    expect(report.status).toBe('Success');
    expect(report.verdicts.overall).toBe('malicious');
    expect(report.jobs.map((job: any) => job.engine)).toEqual(['ioc-lookup', 'ioc-lookup', 'ioc-lookup']);
    expect(report.responses[0].approval).toMatchObject({ state: 'approved', by: 'alice' });
    expect(report.responses[0].report.status).toBe('success');
    expect((await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).split('\n')).toContain('https://evil.example/login?user=bob');

    const delivery = await poll(async () => receiver.received.find((r) => JSON.parse(r.body).data.id === id), Boolean, 'the webhook');
    const { 'webhook-id': webhookId, 'webhook-timestamp': timestamp, 'webhook-signature': signature } = delivery!.headers;
    expect(signature).toBe(signWebhook(secret, String(webhookId), Number(timestamp), delivery!.body));
    expect(JSON.parse(delivery!.body).data.verdicts.overall).toBe('malicious');
    expect(report.notifications).toEqual([{ target: 'webhook', state: 'sent' }]);
  });

  it('does nothing when the response is rejected, and records who rejected it', async () => {
    const { body } = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'phish.example.net' }] });
    const waiting = await pendingApproval(body.id);
    expect(waiting.body.status.responses[0].observable.data).toBe('phish.example.net');
    await post(`/v1/investigations/${body.id}/reject`, { reason: 'shared hosting' }, 'bob');
    const report = (await completed(body.id)).body.report;
    expect(report.responses[0].approval).toMatchObject({ state: 'rejected', by: 'bob', reason: 'shared hosting' });
    expect(report.responses[0].report).toBeUndefined();
    expect(await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).not.toContain('phish.example.net');
  });

  it('lets an approval expire and then does nothing', async () => {
    writePolicy('2s');
    try {
      const { body } = await post('/v1/investigations', { observables: [{ type: 'ip', data: '203.0.113.66' }] });
      const report = (await completed(body.id)).body.report;
      expect(report.responses[0].approval.state).toBe('expired');
      expect(report.responses[0].report).toBeUndefined();
      expect(await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).not.toContain('203.0.113.66');
    } finally {
      writePolicy('1h');
    }
  });

  it('applies a policy rule on the observable\'s tags, without approval when the rule says so', async () => {
    writeFileSync(policyFile, stringify({ rules: [{ name: 'reported by a VIP', when: { tags: ['vip-report'] }, respond: ['blocklist'], approval: 'none' }] }));
    try {
      const { body } = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'tagged.example.org', tags: ['vip-report'] }] });
      const report = (await completed(body.id)).body.report;
      expect(report.verdicts.overall).toBe('safe');
      expect(report.responses).toHaveLength(1);
      expect(report.responses[0]).toMatchObject({ responder: 'blocklist', rule: 'reported by a VIP', approval: { state: 'not-required' }, report: { status: 'success' } });
      expect(report.observables).toEqual([{ type: 'domain', data: 'tagged.example.org', tags: ['vip-report'] }]);
      expect((await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).split('\n')).toContain('tagged.example.org');
    } finally {
      writePolicy('1h');
    }
  });

  it('reuses a fresh result of the same engine on the same input, unless forced', async () => {
    const observables = [{ type: 'domain', data: `fresh-${randomBytes(3).toString('hex')}.example.org` }];
    const first = (await completed((await post('/v1/investigations', { observables })).body.id)).body.report;
    const second = (await completed((await post('/v1/investigations', { observables })).body.id)).body.report;
    const forced = (await completed((await post('/v1/investigations', { observables, force: true })).body.id)).body.report;
    expect(first.jobs[0].cached).toBeUndefined();
    expect(second.jobs[0]).toMatchObject({ cached: true, status: 'success', imageId: first.jobs[0].imageId });
    expect(forced.jobs[0].cached).toBeUndefined();
  });

  it('cancels a running investigation, killing its container', async () => {
    const { body } = await post('/v1/investigations', { observables: [{ type: 'other', data: 'spin' }], engines: ['slow'] });
    await poll(() => leftovers(body.id), (l) => l.containers === 1, 'the slow container to start');
    const cancelled = await post(`/v1/investigations/${body.id}/cancel`, { reason: 'wrong sample' }, 'alice');
    expect(cancelled.status).toBe(202);
    const report = (await completed(body.id)).body.report;
    expect(report).toMatchObject({ status: 'Fail', cancelled: true });
    expect(report.errors).toContain('cancelled by alice: wrong sample');
    await poll(() => leftovers(body.id), (l) => l.containers === 0 && l.volumes === 0, 'the container to be removed');
  });

  it('answers 409 to an approval when nothing waits for one', async () => {
    const { body } = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'quiet.example.org' }] });
    await completed(body.id);
    const answer = await post(`/v1/investigations/${body.id}/approve`, {}, 'alice');
    expect(answer.status).toBe(409);
    expect(answer.body.error.message).toContain('has already finished');
  });

  it('refuses an investigation with bad observables, naming the field, and starts nothing', async () => {
    const answer = await post('/v1/investigations', { observables: [{ type: 'colour', data: 'blue' }] });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain('observables.0.type');
    const empty = await post('/v1/investigations', { text: '   ' });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toContain('nothing to investigate');
  });

  it('lists investigations filtered by verdict and engine through Temporal visibility', async () => {
    const { body } = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'evil.example' }] });
    await pendingApproval(body.id);
    await post(`/v1/investigations/${body.id}/reject`, {}, 'bob');
    await completed(body.id);
    const listed = await poll(
      () => getJson(`${docket.baseUrl}/v1/investigations?verdict=malicious&engine=ioc-lookup&pageSize=100`),
      (r) => r.body.investigations?.some((i: any) => i.id === body.id),
      'the investigation in the list',
    );
    const entry = listed.body.investigations.find((i: any) => i.id === body.id);
    expect(entry).toMatchObject({ status: 'Completed', source: 'http', verdict: 'malicious', observableTypes: ['domain'] });
    const safe = await getJson(`${docket.baseUrl}/v1/investigations?verdict=safe&pageSize=100`);
    expect(safe.body.investigations.some((i: any) => i.id === body.id)).toBe(false);
    const bad = await getJson(`${docket.baseUrl}/v1/investigations?verdict=x'%20OR%20'1'='1`);
    expect(bad.status).toBe(400);
  });
});
