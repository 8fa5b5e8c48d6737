import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { createLogger } from '../../infra/log';
import { statusQuery, temporalScheduleId, WorkflowType } from '../../contract/messages';
import type { InvestigationReport, TaskReport } from '../../core/investigation';
import { KeyStore } from '../../gateway/keys';
import type { ComplianceReport } from '../../core/compliance';
import { docker, readVolumeFile } from '../helpers/engines';
import { buttonPress, deliver, FakeSlack, slashCommand, type SlackBody, type SlackMessageRecord } from '../helpers/fake-slack';
import { enginesFolder } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * No caller reaches a responder past its role or the policy's approval, by any entry point: the API
 * (JSON and multipart), Menagerie uploads, Slack, schedules, the task workflow and compliance events.
 * Real Temporal, real Docker, the real blocklist responder; only Slack is faked, on loopback.
 */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const volume = `docket-blocklist-access-${randomBytes(4).toString('hex')}`;
const policyFile = join(tmpdir(), `docket-access-policy-${randomBytes(4).toString('hex')}.yaml`);
const accountsFile = join(tmpdir(), `docket-access-accounts-${randomBytes(4).toString('hex')}.yaml`);
const secret = randomBytes(16).toString('hex');
const botToken = `xoxb-test-${randomBytes(8).toString('hex')}`;
const ACCOUNT = '210987654321';
const SOC = 'CSOCACCESS';
const ALICE = { id: 'UALICEACC', username: 'alice' };
const MALLORY = 'UMALLORYAC';

/** Bots need a person; the blocklist is named by no rule, so asking for it by name waits for approval. */
const BOT_RULE = { name: 'owners confirm notices', when: { types: ['other'], verdict: 'malicious' }, respond: ['notify_owner'], approval: 'required' };
const writePolicy = (rules: unknown[]) => writeFileSync(policyFile, stringify({ rules: [BOT_RULE, ...rules] }));

describe('responder access', () => {
  let docket: TestSystem;
  let slack: FakeSlack;
  const keys: Record<string, string> = {};
  let reported = 0;

  beforeAll(async () => {
    writePolicy([]);
    process.env.DOCKET_ACCESS_TEST_KEY = 'AKIDACCESS';
    process.env.DOCKET_ACCESS_TEST_SECRET = randomBytes(8).toString('hex');
    writeFileSync(accountsFile, stringify({
      singleAccount: true,
      accounts: { [ACCOUNT]: { name: 'test account', accessKeyIdEnv: 'DOCKET_ACCESS_TEST_KEY', secretAccessKeyEnv: 'DOCKET_ACCESS_TEST_SECRET', region: 'us-east-1' } },
    }));
    const schedulesDir = mkdtempSync(join(tmpdir(), 'docket-access-schedules-'));
    writeFileSync(join(schedulesDir, 'nightly-block.yaml'), stringify({
      id: 'nightly-block', cron: '0 3 * * *', paused: true,
      action: { investigate: { observables: [{ type: 'domain', data: 'scheduled.example' }], engines: ['ioc-lookup'], respond: ['blocklist'] } },
    }));
    writeFileSync(join(schedulesDir, 'nightly-run.yaml'), stringify({
      id: 'nightly-run', cron: '0 4 * * *', paused: true, action: { run: { engine: 'blocklist', args: ['run-task.example'] } },
    }));
    slack = await new FakeSlack(botToken).start();
    slack.members.set(SOC, [ALICE.id, MALLORY]);
    docket = await startTestSystem({
      enginesDir: enginesFolder([
        sample('ioc-lookup'),
        { ...sample('blocklist'), volumes: [{ name: volume, target: '/blocklist' }] },
        { name: 'notify_owner', kind: 'responder', description: 'tells the owner', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout', command: ['/bin/echo', 'owner notified'], timeout: '30s' },
      ]),
      log: createLogger('info', (line) => process.env.ACCESS_DEBUG && console.log(line)),
      env: {
        DOCKET_POLICY_FILE: policyFile,
        DOCKET_ACCOUNTS_FILE: accountsFile,
        DOCKET_SCHEDULES_DIR: schedulesDir,
        DOCKET_ANONYMOUS: 'analyze',
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: secret,
        DOCKET_SLACK_API_URL: slack.apiUrl,
        DOCKET_SLACK_CHANNELS: SOC,
        DOCKET_SLACK_APPROVERS: ALICE.id,
      },
    });
    const store = new KeyStore(join(docket.dataDir, 'keys.json'));
    keys.analyst = (await store.create('analyst', 'analyze')).key;
    keys.responder = (await store.create('responder', 'respond')).key;
  });
  afterAll(async () => {
    await docket?.close();
    await slack?.close();
    await docker.getVolume(volume).remove().catch(() => undefined);
  });

  const headers = (as?: string): Record<string, string> => (as ? { authorization: `Bearer ${keys[as]}` } : {});
  const post = async (path: string, body: unknown, as?: string) => {
    const response = await fetch(`${docket.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers(as) }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as any };
  };
  const postForm = async (path: string, form: FormData, as?: string) => {
    const response = await fetch(`${docket.baseUrl}${path}`, { method: 'POST', headers: headers(as), body: form });
    return { status: response.status, body: (await response.json()) as any };
  };
  /** Lines the blocklist responder wrote for `entry`: how many times it acted on it. */
  const blocked = async (entry: string) => {
    const text = await readVolumeFile(volume, '/volume/blocklist.txt').catch(() => '');
    return text.split('\n').filter((line) => line === entry).length;
  };
  const status = (id: string) => docket.client.workflow.getHandle(id).query(statusQuery);
  const pending = (id: string) => poll(() => status(id).catch(() => ({ responses: [] as any[] })), (s) => s.responses.some((r) => r.approval.state === 'pending'), `a pending response in ${id}`)
    .then((s) => s.responses);
  const approve = (id: string) => post(`/v1/investigations/${encodeURIComponent(id)}/approve`, {}, 'responder');
  const report = (id: string) => docket.client.workflow.getHandle(id).result() as Promise<InvestigationReport>;

  describe('POST /v1/investigations', () => {
    it('refuses a responder named in engines to an analyze key with 403 naming the respond role and the responder, and starts nothing', async () => {
      const answer = await post('/v1/investigations', { observables: [{ type: 'url', data: 'https://refused.invalid/' }], engines: ['blocklist'] }, 'analyst');
      expect(answer.status).toBe(403);
      expect(answer.body.error.message).toContain('needs the respond role');
      expect(answer.body.error.message).toContain('responder blocklist');
      expect(answer.body.error.message).toContain('--role respond');
      expect(answer.body.error.details).toMatchObject({ needed: 'respond', role: 'analyze', responders: ['blocklist'] });
      const explicit = await post('/v1/investigations', { observables: [{ type: 'url', data: 'https://refused.invalid/' }], respond: ['blocklist'] }, 'analyst');
      expect(explicit.status).toBe(403);
    });

    it('refuses a responder to a caller without a key with 401 naming the respond role', async () => {
      const answer = await post('/v1/investigations', { observables: [{ type: 'url', data: 'https://refused.invalid/' }], engines: ['blocklist'] });
      expect(answer.status).toBe(401);
      expect(answer.body.error.message).toContain('needs a key with the respond role');
    });

    it('queues a respond key\'s request for the responder until it is approved, then runs it once', async () => {
      const target = `https://approved-${randomBytes(3).toString('hex')}.invalid/`;
      const answer = await post('/v1/investigations', { observables: [{ type: 'url', data: target }], engines: ['blocklist'] }, 'responder');
      expect(answer.status).toBe(202);
      const [response] = await pending(answer.body.id);
      expect(response).toMatchObject({ responder: 'blocklist', rule: 'requested by responder', observable: { type: 'url', data: target }, approval: { state: 'pending' } });
      expect(response.report).toBeUndefined();
      expect(await blocked(target)).toBe(0);

      expect((await approve(answer.body.id)).status).toBe(200);
      const done = await report(answer.body.id);
      expect(done.jobs).toEqual([]);
      expect(done.responses).toEqual([expect.objectContaining({ approval: expect.objectContaining({ state: 'approved', by: 'responder' }), report: expect.objectContaining({ status: 'success' }) })]);
      expect(done.status).toBe('Success');
      expect(await blocked(target)).toBe(1);
    });

    it('runs a requested responder without approval only when every policy rule naming it says none', async () => {
      writePolicy([{ name: 'trusted blocks', when: { tags: ['trusted'] }, respond: ['blocklist'], approval: 'none' }]);
      try {
        const target = `https://trusted-${randomBytes(3).toString('hex')}.invalid/`;
        const answer = await post('/v1/investigations', { observables: [{ type: 'url', data: target }], respond: ['blocklist'], engines: [] }, 'responder');
        const done = await report(answer.body.id);
        expect(done.responses).toEqual([expect.objectContaining({ approval: { state: 'not-required' }, report: expect.objectContaining({ status: 'success' }) })]);
        expect(await blocked(target)).toBe(1);
      } finally {
        writePolicy([]);
      }
    });

    it('does the same for multipart requests: 403 for an analyze key, pending for a respond key', async () => {
      const target = `https://multipart-${randomBytes(3).toString('hex')}.invalid/`;
      const form = () => {
        const body = new FormData();
        body.append('observables', JSON.stringify([{ type: 'url', data: target }]));
        body.append('engines', 'blocklist');
        return body;
      };
      const refused = await postForm('/v1/investigations', form(), 'analyst');
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toContain('respond role');
      const queued = await postForm('/v1/investigations', form(), 'responder');
      expect(queued.status).toBe(202);
      expect((await pending(queued.body.id))[0]).toMatchObject({ responder: 'blocklist', approval: { state: 'pending' } });
      expect(await blocked(target)).toBe(0);
      await post(`/v1/investigations/${queued.body.id}/reject`, {}, 'responder');
      expect((await report(queued.body.id)).responses[0].approval.state).toBe('rejected');
      expect(await blocked(target)).toBe(0);
    });

    it('refuses a body that sets source or requester with 400 naming the field', async () => {
      for (const field of ['source', 'requester']) {
        const answer = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'example.org' }], [field]: 'slack' }, 'analyst');
        expect(answer.status).toBe(400);
        expect(answer.body.error.message).toContain(`${field} is set by Docket`);
        expect(answer.body.error.details).toEqual({ field });
      }
      const form = new FormData();
      form.append('text', 'example.org');
      form.append('source', 'slack');
      expect((await postForm('/v1/investigations', form, 'analyst')).status).toBe(400);
    });

    it('refuses an analyzer or an unknown name in respond with 400 naming the responders', async () => {
      const answer = await post('/v1/investigations', { observables: [{ type: 'domain', data: 'example.org' }], respond: ['ioc-lookup'] }, 'responder');
      expect(answer.status).toBe(400);
      expect(answer.body.error.message).toContain('ioc-lookup is an analyzer, not a responder');
      expect(answer.body.error.message).toContain('the responders are: blocklist, notify_owner');
    });
  });

  describe('POST /<engine>/upload', () => {
    const upload = (as: string) => {
      const form = new FormData();
      form.append('upload', new Blob(['https://upload.invalid/\n']), 'list.txt');
      return postForm('/blocklist/upload', form, as);
    };

    it('refuses a responder to an analyze key with 403 naming the respond role', async () => {
      const answer = await upload('analyst');
      expect(answer.status).toBe(403);
      expect(answer.body.error.message).toContain('asking for responder blocklist needs the respond role');
    });

    it('never runs a responder from an upload, and tells a respond key where to ask for it', async () => {
      const answer = await upload('responder');
      expect(answer.status).toBe(400);
      expect(answer.body.error.message).toContain('"respond":["blocklist"]');
      expect(await blocked('https://upload.invalid/')).toBe(0);
    });
  });

  describe('Slack', () => {
    const send = (body: SlackBody) => deliver(docket.baseUrl, body, { secret });
    const triggerOf = (body: SlackBody) => (body as { form: Record<string, string> }).form.trigger_id;

    it('refuses `run <responder>` to someone who is not an approver, and starts nothing', async () => {
      const body = slashCommand(slack, SOC, MALLORY, 'run blocklist https://slack-refused.invalid/');
      expect((await send(body)).status).toBe(200);
      await poll(async () => slack.responses.filter((r) => String(r.body.text).includes('only approvers may run it')), (found) => found.length > 0, 'the refusal');
      await expect(docket.client.workflow.getHandle(`slack-${triggerOf(body)}`).describe()).rejects.toThrow();
      expect(await blocked('https://slack-refused.invalid/')).toBe(0);
    });

    it('queues an approver\'s `run <responder>` for approval with buttons, and runs it once when approved', async () => {
      const target = `https://slack-${randomBytes(3).toString('hex')}.invalid/`;
      const body = slashCommand(slack, SOC, ALICE.id, `run blocklist ${target}`);
      expect((await send(body)).status).toBe(200);
      const id = `slack-${triggerOf(body)}`;
      expect((await pending(id))[0]).toMatchObject({ responder: 'blocklist', rule: `requested by Slack ${ALICE.id}` });
      expect(await blocked(target)).toBe(0);
      const message = await poll(
        async () => slack.posted(SOC).filter((m) => m.blocks.some((block) => block.type === 'actions') && JSON.stringify(m.blocks).includes(id)),
        (found) => found.length === 1,
        'the approval buttons',
      ).then((found) => found[0] as SlackMessageRecord);
      expect((await send(buttonPress(slack, message, 'docket_approve', ALICE))).status).toBe(200);
      const done = await report(id);
      expect(done).toMatchObject({ source: 'slack', jobs: [] });
      expect(done.responses[0].approval).toMatchObject({ state: 'approved' });
      expect(await blocked(target)).toBe(1);
    });
  });

  describe('schedules and tasks', () => {
    const triggered = async (id: string) => {
      const handle = docket.client.schedule.getHandle(temporalScheduleId(docket.config.DOCKET_QUEUE_PREFIX, id));
      await handle.trigger();
      const described = await poll(() => handle.describe(), (d) => d.info.recentActions.length > 0, `a run of schedule ${id}`);
      return described.info.recentActions[0].action.workflow.workflowId;
    };

    it('queues a schedule\'s requested responder for approval after its analysis, then runs it once', async () => {
      const id = await triggered('nightly-block');
      expect((await pending(id))[0]).toMatchObject({ responder: 'blocklist', rule: 'requested by schedule nightly-block' });
      expect(await blocked('scheduled.example')).toBe(0);
      expect((await approve(id)).status).toBe(200);
      const done = await report(id);
      expect(done.jobs.map((job) => job.engine)).toEqual(['ioc-lookup']);
      expect(done.responses[0].report?.status).toBe('success');
      expect(await blocked('scheduled.example')).toBe(1);
    });

    it('never runs a responder as a task, from a schedule or started directly, and says where to ask for it', async () => {
      const scheduled = (await docket.client.workflow.getHandle(await triggered('nightly-run')).result()) as TaskReport;
      expect(scheduled.status).toBe('Fail');
      expect(scheduled.report).toBeUndefined();
      expect(scheduled.errors[0]).toContain('engine blocklist is a responder, so a task does not run it');
      const direct = await docket.client.workflow.execute(WorkflowType.task, {
        taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}${docket.config.DOCKET_TASK_QUEUE}`,
        workflowId: `direct-task-${randomBytes(4).toString('hex')}`,
        args: [{ engine: 'blocklist', args: ['direct-task.example'], env: {}, source: 'cli' }],
      }) as TaskReport;
      expect(direct.errors[0]).toContain('is a responder');
      expect(await blocked('run-task.example')).toBe(0);
      expect(await blocked('direct-task.example')).toBe(0);
    });
  });

  describe('POST /v1/events/compliance', () => {
    const finding = (tags: string) => ({
      reportTime: new Date(Date.UTC(2026, 1, 1, 10, 0, (reported += 1))).toISOString(),
      status: 'Failed',
      rule: { name: 'owner must know', ruleId: 'D9.TEST.ACCESS', complianceTags: tags, severity: 'High' },
      account: { id: ACCOUNT, name: 'test account', vendor: 'aws' },
      entity: { id: 'i-0123456789abcdef0', name: 'web-1', type: 'Instance', region: 'us_east_1' },
    });

    it('refuses an analyze key with 403 naming the respond role', async () => {
      const answer = await post('/v1/events/compliance', finding('AUTO: notify_owner'), 'analyst');
      expect(answer.status).toBe(403);
      expect(answer.body.error.message).toContain('needs respond');
    });

    it('holds a bot a policy rule names with approval required until it is approved, then runs it once', async () => {
      const answer = await post('/v1/events/compliance', finding('AUTO: notify_owner'), 'responder');
      expect(answer.status).toBe(202);
      const { workflowId } = answer.body.findings[0];
      const [response] = await pending(workflowId);
      expect(response).toMatchObject({ responder: 'notify_owner', rule: 'owners confirm notices', approval: { state: 'pending' } });
      expect((await approve(workflowId)).status).toBe(200);
      const done = (await docket.client.workflow.getHandle(workflowId).result()) as ComplianceReport;
      expect(done.bots).toEqual([expect.objectContaining({ bot: 'notify_owner', outcome: 'passed', message: expect.stringContaining('owner notified') })]);
      expect(done.responses?.[0].approval).toMatchObject({ state: 'approved', by: 'responder' });
    });

    it('does not run a held bot that is rejected, and says why', async () => {
      const answer = await post('/v1/events/compliance', finding('AUTO: notify_owner'), 'responder');
      const { workflowId } = answer.body.findings[0];
      await pending(workflowId);
      await post(`/v1/investigations/${encodeURIComponent(workflowId)}/reject`, { reason: 'owner is on leave' }, 'responder');
      const done = (await docket.client.workflow.getHandle(workflowId).result()) as ComplianceReport;
      expect(done.bots).toEqual([expect.objectContaining({ outcome: 'failed', message: expect.stringContaining('responder rejected it (owner is on leave)') })]);
      expect(done.bots[0].report).toBeUndefined();
    });
  });
});
