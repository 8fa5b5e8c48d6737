import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealSlackMessage } from '../../infra/slack-client';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import { deliver, FakeSlack, mention, type SlackBody, type SlackMessageRecord } from '../helpers/fake-slack';
import { enginesFolder } from '../helpers/fixtures';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';
import { startWebhookReceiver } from '../helpers/webhook-receiver';
import { WorkflowType } from '../../contract/messages';

/**
 * Where a request may have Docket report: only to channels Docket serves and webhooks its allow list
 * admits, and Slack messages are edited only by the investigation Docket posted them for. Real
 * gateway, workers, Temporal and engines; Slack is the local fake, the webhook a local receiver.
 */
const SOC = 'CSOC0001';
const ELSEWHERE = 'CRANDOM01';
const BOB = 'UBOB0001';
const secret = randomBytes(16).toString('hex');
const botToken = `xoxb-test-${randomBytes(8).toString('hex')}`;

describe('notify limits', () => {
  let docket: TestSystem;
  let slack: FakeSlack;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let origin: string;

  beforeAll(async () => {
    slack = await new FakeSlack(botToken).start();
    receiver = await startWebhookReceiver();
    origin = new URL(receiver.url).origin;
    const engines = enginesFolder([
      { name: 'echo', kind: 'analyzer', description: 'prints what it is given', image: 'docket/base:bookworm', accepts: ['domain', 'url', 'other'], protocol: 'stdout', command: ['/bin/echo'], timeout: '30s' },
    ]);
    docket = await startTestSystem({
      enginesDir: engines,
      env: {
        DOCKET_ANONYMOUS: 'analyze',
        DOCKET_POLICY_FILE: join(tmpdir(), `docket-no-policy-${randomBytes(4).toString('hex')}.yaml`),
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: secret,
        DOCKET_SLACK_API_URL: slack.apiUrl,
        DOCKET_SLACK_CHANNELS: SOC,
        // The receiver's /hooks, plus two entries a string prefix would have let tricks through.
        DOCKET_WEBHOOK_ALLOW: `${origin}/hooks, http://127.0.0.1:999, https://hooks.docket.invalid/hooks`,
      },
    });
  });
  afterAll(async () => {
    await docket?.close();
    await slack?.close();
    await receiver?.close();
  });

  const post = async (body: unknown) => {
    const response = await fetch(`${docket.baseUrl}/v1/investigations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as any };
  };
  const result = (id: string) => docket.client.workflow.getHandle(id).result() as Promise<InvestigationReport>;
  const taskQueue = () => `${docket.config.DOCKET_QUEUE_PREFIX}${docket.config.DOCKET_TASK_QUEUE}`;
  const listed = async () => {
    const ids: string[] = [];
    for await (const execution of docket.client.workflow.list({ query: `TaskQueue = '${taskQueue()}'` })) ids.push(execution.workflowId);
    return ids;
  };
  /** Refused requests started nothing: a request sent after them is listed, and is the only new workflow. */
  const expectNothingStartedSince = async (before: string[]) => {
    const sentinel = await post({ observables: [{ type: 'other', data: 'sentinel' }] });
    expect(sentinel.status).toBe(202);
    const after = await poll(listed, (ids) => ids.includes(sentinel.body.id), 'the later request to be listed');
    expect(after.filter((id) => !before.includes(id))).toEqual([sentinel.body.id]);
  };
  const updatesOf = (ts: string, since = 0) => slack.calls.slice(since).filter((call) => call.method === 'chat.update' && call.args.ts === ts);
  const isSummary = (message: SlackMessageRecord) => message.blocks.some((block) => block.type === 'header');
  const allText = (message: SlackMessageRecord) => `${message.text}\n${JSON.stringify(message.blocks)}`;

  /** A message Docket posted for a request made in Slack, edited into that request's summary. */
  const slackRequestSummary = async (url: string): Promise<{ message: SlackMessageRecord; workflowId: string }> => {
    const body: SlackBody = mention(SOC, BOB, `analyze ${url}`);
    expect((await deliver(docket.baseUrl, body, { secret })).status).toBe(200);
    const json = (body as { json: { event_id: string; event: { ts: string } } }).json;
    const [message] = await poll(
      async () => slack.posted(SOC, json.event.ts).filter((posted) => !posted.deleted),
      (messages) => messages.length === 1 && isSummary(messages[0]),
      'the summary of the Slack request',
    );
    return { message, workflowId: `slack-${json.event_id}` };
  };

  it('refuses with 400 naming DOCKET_SLACK_CHANNELS a Slack channel Docket does not serve, and starts nothing', async () => {
    const before = await listed();
    const callsBefore = slack.calls.length;
    const answer = await post({ observables: [{ type: 'domain', data: 'refused.docket.example' }], notify: { slack: { channel: ELSEWHERE } } });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain('DOCKET_SLACK_CHANNELS');
    expect(answer.body.error.message).toContain(ELSEWHERE);

    const sealed = await post({ observables: [{ type: 'domain', data: 'refused.docket.example' }], notify: { slack: { channel: SOC, message: '1718000000.000100', seal: 'x' } } });
    expect(sealed.status).toBe(400);
    expect(sealed.body.error.message).toContain('notify.slack.message');

    await expectNothingStartedSince(before);
    expect(slack.calls.slice(callsBefore).filter((call) => call.args.channel === ELSEWHERE)).toEqual([]);
  });

  it("never edits another investigation's message named as the thread: it answers there with a message of its own and edits only that", async () => {
    const victim = await slackRequestSummary('hxxps://victim[.]example/one');
    // Docket's own flow still works: the message it announced the Slack request with became the summary.
    expect(victim.message.versions.length).toBeGreaterThan(1);
    expect(victim.message.versions[0].text).toContain('Investigating');
    const versions = victim.message.versions.length;
    const callsBefore = slack.calls.length;

    const started = await post({ observables: [{ type: 'domain', data: 'api.docket.example' }], notify: { slack: { channel: SOC, thread: victim.message.ts } } });
    expect(started.status).toBe(202);
    const report = await result(started.body.id);
    expect(report.notifications).toEqual([{ target: `slack ${SOC}`, state: 'sent' }]);

    expect(updatesOf(victim.message.ts, callsBefore)).toEqual([]);
    expect(victim.message.versions).toHaveLength(versions);
    const replies = slack.posted(SOC, victim.message.ts);
    expect(replies).toHaveLength(1);
    const own = replies[0];
    expect(isSummary(own)).toBe(true);
    expect(allText(own)).toContain(started.body.id);
    const edits = slack.calls.slice(callsBefore).filter((call) => call.method === 'chat.update');
    expect(edits.length).toBeGreaterThan(0);
    expect([...new Set(edits.map((call) => call.args.ts))]).toEqual([own.ts]);
  });

  it('refuses in the worker too a message sealed for another investigation, a channel not served and a webhook not allowed, and records why', async () => {
    const victim = await slackRequestSummary('hxxps://victim[.]example/two');
    const versions = victim.message.versions.length;
    const callsBefore = slack.calls.length;
    const receivedBefore = receiver.received.length;
    // Straight to Temporal, past the gateway's checks, as another entry point might.
    const start = (workflowId: string, notify: unknown) => docket.client.workflow.start(WorkflowType.investigation, {
      taskQueue: taskQueue(),
      workflowId,
      args: [InvestigationInput.parse({ observables: [{ type: 'domain', data: 'direct.docket.example' }], notify })],
    });
    const replayed = `direct-${randomBytes(4).toString('hex')}`;
    await start(replayed, {
      webhook: `${origin}/hooksx/docket`,
      slack: { channel: SOC, message: victim.message.ts, seal: sealSlackMessage(botToken, victim.workflowId, SOC, victim.message.ts) },
    });
    const unserved = `direct-${randomBytes(4).toString('hex')}`;
    await start(unserved, { slack: { channel: ELSEWHERE } });

    const first = await result(replayed);
    expect(first.notifications).toEqual([
      { target: `webhook ${origin}/hooksx/docket`, state: 'failed', detail: expect.stringContaining('DOCKET_WEBHOOK_ALLOW') },
      { target: `slack ${SOC}`, state: 'failed', detail: expect.stringContaining(`was not posted by Docket for ${replayed}`) },
    ]);
    const second = await result(unserved);
    expect(second.notifications).toEqual([{ target: `slack ${ELSEWHERE}`, state: 'failed', detail: expect.stringContaining('DOCKET_SLACK_CHANNELS') }]);

    expect(updatesOf(victim.message.ts, callsBefore)).toEqual([]);
    expect(victim.message.versions).toHaveLength(versions);
    expect(slack.calls.slice(callsBefore).filter((call) => call.method.startsWith('chat.'))).toEqual([]);
    expect(receiver.received.slice(receivedBefore)).toEqual([]);
  });

  it('refuses with 400 naming DOCKET_WEBHOOK_ALLOW the webhooks a string prefix would have let through, and starts nothing', async () => {
    const port = new URL(receiver.url).port;
    const tricks = [
      'http://127.0.0.1:9990/hooks',
      `${origin}/hooksx/docket`,
      `${origin}/hooks/../admin`,
      `${origin}/hooks%2F..%2Fadmin`,
      `http://hooks.docket.invalid@127.0.0.1:${port}/hooks/docket`,
      'https://hooks.docket.invalid.attacker.invalid/hooks',
      `ftp://127.0.0.1:${port}/hooks/docket`,
    ];
    const before = await listed();
    const receivedBefore = receiver.received.length;
    for (const webhook of tricks) {
      const answer = await post({ observables: [{ type: 'domain', data: 'tricky.docket.example' }], notify: { webhook } });
      expect({ webhook, status: answer.status, named: String(answer.body.error?.message).includes('DOCKET_WEBHOOK_ALLOW') }).toEqual({ webhook, status: 400, named: true });
    }
    await expectNothingStartedSince(before);
    expect(receiver.received.slice(receivedBefore)).toEqual([]);
  });

  it('delivers to an allowed webhook, and records it as sent', async () => {
    const started = await post({ observables: [{ type: 'domain', data: 'allowed.docket.example' }], notify: { webhook: receiver.url } });
    expect(started.status).toBe(202);
    const delivery = await poll(async () => receiver.received.find((received) => JSON.parse(received.body).data.id === started.body.id), Boolean, 'the webhook');
    expect(JSON.parse(delivery!.body).type).toBe('investigation.finished');
    expect((await result(started.body.id)).notifications).toEqual([{ target: `webhook ${receiver.url}`, state: 'sent' }]);
  });
});
