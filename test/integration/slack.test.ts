import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { parse as parseYaml, stringify } from 'yaml';
import { statusQuery } from '../../contract/messages';
import { createLogger } from '../../infra/log';
import type { InvestigationReport, TaskReport } from '../../core/investigation';
import { docker, readVolumeFile } from '../helpers/engines';
import {
  buttonPress, deliver, deliverOverSocket, directMessage, eventCallback, FakeSlack, mention, signSlack, slashCommand, type SlackBody, type SlackMessageRecord,
} from '../helpers/fake-slack';
import { enginesFolder, writeApprovalPolicy } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * Slack chatops on real Temporal, real engines and real Docker; only Slack is faked, on loopback.
 * Every specification runs over both ways Slack reaches an app: HTTP, where each request to Docket
 * is signed as Slack signs it, and Socket Mode, where Docket connects out to the fake's WebSocket
 * and Slack's envelopes come over it (what a gateway behind a firewall uses).
 */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const secret = randomBytes(16).toString('hex');
const botToken = `xoxb-test-${randomBytes(8).toString('hex')}`;
const appToken = `xapp-1-test-${randomBytes(8).toString('hex')}`;

const SOC = 'CSOC0001';
const ELSEWHERE = 'CRANDOM01';
const ALICE = { id: 'UALICE01', username: 'alice' };
const MALLORY = { id: 'UMALLORY1', username: 'mallory' };
const BOB = 'UBOB0001';
const EVE = 'UEVE0001';

type Transport = 'HTTP' | 'Socket Mode';

describe.each<Transport>(['HTTP', 'Socket Mode'])('Slack chatops over %s', (transport) => {
  const socketMode = transport === 'Socket Mode';
  const blocklistVolume = `docket-blocklist-slack-${randomBytes(4).toString('hex')}`;
  const policyFile = join(tmpdir(), `docket-slack-policy-${randomBytes(4).toString('hex')}.yaml`);
  let docket: TestSystem;
  let slack: FakeSlack;
  const logged: string[] = [];

  beforeAll(async () => {
    writeApprovalPolicy(policyFile);
    const schedulesDir = mkdtempSync(join(tmpdir(), 'docket-slack-schedules-'));
    writeFileSync(join(schedulesDir, 'nightly-echo.yaml'), stringify({
      id: 'nightly-echo', description: 'greets the night shift', cron: '0 3 * * *', action: { run: { engine: 'echo', args: ['good night'] } }, paused: true,
    }));
    slack = await new FakeSlack(botToken, appToken).start();
    slack.members.set(SOC, [ALICE.id, MALLORY.id, BOB]);
    const engines = enginesFolder([
      sample('ioc-lookup'),
      sample('fileinfo'),
      { ...sample('blocklist'), volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
      { name: 'echo', kind: 'analyzer', description: 'prints its arguments', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout', command: ['/bin/echo'], timeout: '30s' },
      { name: 'sleepy', kind: 'analyzer', description: 'takes a few seconds', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout', command: ['/bin/sh', '-c', 'sleep 4; echo awake'], timeout: '60s' },
    ]);
    docket = await startTestSystem({
      enginesDir: engines,
      log: createLogger('info', (line) => logged.push(line)),
      env: {
        DOCKET_POLICY_FILE: policyFile,
        DOCKET_SCHEDULES_DIR: schedulesDir,
        SLACK_BOT_TOKEN: botToken,
        // Both set, as many installations have them: the app token turns Socket Mode on, and HTTP off.
        SLACK_SIGNING_SECRET: secret,
        ...(socketMode ? { SLACK_APP_TOKEN: appToken } : {}),
        DOCKET_SLACK_API_URL: slack.apiUrl,
        DOCKET_SLACK_CHANNELS: SOC,
        DOCKET_SLACK_APPROVERS: ALICE.id,
        DOCKET_CONSOLE_URL: 'http://docket.test/console/',
      },
    });
    if (socketMode) await slack.socket.waitForConnection(1);
  });
  afterAll(async () => {
    await docket?.close();
    await slack?.close();
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  /** A request as Slack delivers it over this transport; over Socket Mode, "200" is the app's ack on the socket. */
  const send = async (body: SlackBody, options: { timestamp?: number; retry?: number; signature?: string } = {}) => {
    if (!socketMode) return deliver(docket.baseUrl, body, { secret, ...options });
    const { ack } = await deliverOverSocket(slack, body, { retry: options.retry });
    return { status: 200, text: JSON.stringify(ack.payload ?? {}) };
  };
  /** Specifications that are about one transport only. */
  const overHttp = (name: string, test: () => Promise<void>) => { if (!socketMode) it(name, test); };
  const overSocket = (name: string, test: () => Promise<void>) => { if (socketMode) it(name, test); };
  const eventIdOf = (body: SlackBody) => ('json' in body ? String(body.json.event_id) : '');
  const eventOf = (body: SlackBody) => ('json' in body ? (body.json.event as Record<string, string>) : {});
  const workflowExists = async (id: string) => {
    try {
      await docket.client.workflow.getHandle(id).describe();
      return true;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  };
  /** The one message Docket posted in a thread, once it satisfies `done`. */
  const threadMessage = (channel: string, thread: string | undefined, done: (message: SlackMessageRecord) => boolean, what: string) => poll(
    async () => slack.posted(channel).filter((message) => message.thread_ts === thread && !message.deleted),
    (messages) => messages.length === 1 && done(messages[0]),
    what,
  ).then((messages) => messages[0]);
  const allText = (message: SlackMessageRecord) => `${message.text}\n${JSON.stringify(message.blocks)}`;
  const hasButtons = (message: SlackMessageRecord) => message.blocks.some((block) => block.type === 'actions');
  const isSummary = (message: SlackMessageRecord) => message.blocks.some((block) => block.type === 'header');
  const ephemeralTo = (user: string, containing: string) => poll(
    async () => slack.callsTo('chat.postEphemeral').filter((call) => call.args.user === user && String(call.args.text).includes(containing)),
    (calls) => calls.length > 0,
    `a private answer to ${user} saying "${containing}"`,
  );

  it('answers a mention of a defanged URL in its thread, edits the message as engines run, asks for approval, and ends with the verdict', async () => {
    const body = mention(SOC, BOB, 'analyze hxxps://evil[.]example/x please');
    const acked = await send(body);
    expect(acked.status).toBe(200);
    const thread = eventOf(body).ts;

    const waiting = await threadMessage(SOC, thread, hasButtons, 'the progress message with approval buttons');
    expect(waiting.versions[0].text).toContain(':mag: Investigating url');
    expect(waiting.versions.length).toBeGreaterThan(1);
    expect(allText(waiting)).toContain('ioc-lookup');
    expect(allText(waiting)).toContain('malicious');
    // Observables are shown defanged, so nobody opens them by a click.
    expect(allText(waiting)).toContain('hxxps[://]evil[.]example/x');
    expect(allText(waiting)).not.toContain('https://evil.example');

    const refused = await send(buttonPress(slack, waiting, 'docket_approve', MALLORY));
    expect(refused.status).toBe(200);
    await ephemeralTo(MALLORY.id, 'only approvers');
    expect(logged.some((line) => line.includes(`${MALLORY.id} (mallory) pressed approve`) && line.includes('refused'))).toBe(true);
    const id = `slack-${eventIdOf(body)}`;
    const stillPending = await docket.client.workflow.getHandle(id).query(statusQuery);
    expect(stillPending.responses.map((response) => response.approval.state)).toEqual(['pending']);

    expect((await send(buttonPress(slack, waiting, 'docket_approve', ALICE))).status).toBe(200);
    const summary = await threadMessage(SOC, thread, isSummary, 'the verdict summary');
    const text = allText(summary);
    expect(text).toContain('Verdict: malicious');
    expect(text).toContain(`approved by <@${ALICE.id}>`);
    expect(text).toContain('ran: success');
    expect(text).toContain(`http://docket.test/console/#/investigations/${id}`);
    expect(text).toContain(`/namespaces/default/workflows/${id}`);
    expect(hasButtons(summary)).toBe(false);
    const approvedEdit = summary.versions.find((version) => !version.blocks.some((block) => block.type === 'header') && JSON.stringify(version.blocks).includes(`approved by <@${ALICE.id}>`));
    expect(approvedEdit).toBeDefined();

    const report = (await docket.client.workflow.getHandle(id).result()) as InvestigationReport;
    expect(report).toMatchObject({ source: 'slack', verdicts: { overall: 'malicious' } });
    expect(report.responses[0].approval).toMatchObject({ state: 'approved', by: `alice (Slack ${ALICE.id})` });
    expect((await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).split('\n')).toContain('https://evil.example/x');
  });

  overHttp('refuses a forged signature and a timestamp older than five minutes with 401, and starts nothing', async () => {
    const forged = mention(SOC, BOB, 'analyze 203.0.113.9');
    const answer = await send(forged, { signature: `v0=${'0'.repeat(64)}` });
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.text).error.code).toBe('unauthorized');

    const stale = mention(SOC, BOB, 'analyze 203.0.113.10');
    const old = Math.floor(Date.now() / 1000) - 5 * 60 - 30;
    const replayed = await send(stale, { timestamp: old });
    expect(replayed.status).toBe(401);
    expect(JSON.parse(replayed.text).error.message).toContain('window');

    const wrongSecret = mention(SOC, BOB, 'analyze 203.0.113.11');
    const raw = JSON.stringify((wrongSecret as { json: unknown }).json);
    const now = Math.floor(Date.now() / 1000);
    expect((await send(wrongSecret, { signature: signSlack('not-the-secret', now, raw) })).status).toBe(401);

    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const body of [forged, stale, wrongSecret]) {
      expect(await workflowExists(`slack-${eventIdOf(body)}`)).toBe(false);
      expect(slack.posted(SOC).some((message) => message.thread_ts === eventOf(body).ts)).toBe(false);
    }
  });

  it('starts one investigation when Slack delivers the same event again, at once and after it finished', async () => {
    const body = mention(SOC, BOB, 'analyze 198.51.100.77');
    const answers = await Promise.all([send(body), send(body, { retry: 1 })]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    const thread = eventOf(body).ts;
    const summary = await threadMessage(SOC, thread, isSummary, 'the summary of the one investigation');
    expect(allText(summary)).toContain('suspicious');
    expect((await send(body, { retry: 2 })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(slack.posted(SOC).filter((message) => message.thread_ts === thread && !message.deleted)).toHaveLength(1);
    const started = await docket.client.workflow.list({ query: `WorkflowId = 'slack-${eventIdOf(body)}'` });
    let runs = 0;
    for await (const _ of started) runs += 1;
    expect(runs).toBe(1);
  });

  it('downloads a file shared in a direct message with the bot token and investigates it', async () => {
    const content = 'Dear customer, please pay at hxxp://pay[.]example/now\n';
    const file = slack.addFile('invoice.txt', content);
    const body = directMessage('DBOB0001', BOB, 'what is this?', { subtype: 'file_share', files: [{ id: file, name: 'invoice.txt' }] });
    expect((await send(body)).status).toBe(200);
    const summary = await threadMessage('DBOB0001', undefined, isSummary, 'the summary of the file investigation');
    expect(allText(summary)).toContain('invoice.txt');
    expect(slack.downloads).toContainEqual({ file, authorized: true });
    const report = (await docket.client.workflow.getHandle(`slack-${eventIdOf(body)}`).result()) as InvestigationReport;
    const fileJob = report.jobs.find((job) => job.subject.kind === 'file');
    expect(fileJob).toMatchObject({ engine: 'fileinfo', status: 'success' });
    expect(fileJob?.subject).toMatchObject({ kind: 'file', file: { filename: 'invoice.txt', size: Buffer.byteLength(content) } });
  });

  it('runs `run <engine> <args>` from the slash command and posts what the engine printed', async () => {
    const command = slashCommand(slack, SOC, BOB, 'run echo "hello from" docket');
    const acked = await send(command);
    expect(acked.status).toBe(200);
    const done = await threadMessage(SOC, undefined, (message) => message.text.includes('finished') && allText(message).includes('run echo'), 'the output of run echo');
    expect(done.versions[0].text).toContain('Running `echo hello from docket`');
    expect(allText(done)).toContain('hello from docket');
    const id = `slack-${(command as { form: Record<string, string> }).form.trigger_id}`;
    const report = (await docket.client.workflow.getHandle(id).result()) as TaskReport;
    expect(report).toMatchObject({ engine: 'echo', status: 'Success', source: 'slack' });
  });

  it('answers quick commands at once: help, engines, jobs, status, schedules, and anything else with the short help', async () => {
    const ask = async (text: string) => {
      const command = slashCommand(slack, SOC, BOB, text);
      const url = (command as { form: Record<string, string> }).form.response_url;
      expect((await send(command)).status).toBe(200);
      const [answer] = await poll(async () => slack.responses.filter((response) => url.endsWith(response.path)), (found) => found.length > 0, `the answer to ${text}`);
      return `${answer.body.text}\n${JSON.stringify(answer.body.blocks ?? [])}`;
    };
    expect(await ask('help')).toContain('/docket analyze');
    expect(await ask('what is the weather')).toContain('What I can do');
    expect(await ask('engines')).toMatch(/echo[\s\S]*ioc-lookup/);
    const jobs = await ask('jobs 5');
    expect(jobs).toContain('investigation(s)');
    const listed = /#\/investigations\/(slack-[^|>]+)/.exec(jobs);
    expect(listed).not.toBeNull();
    expect(await ask(`status ${listed![1]}`)).toMatch(/Verdict|Investigation/);
    expect(await ask('status no-such-job')).toContain('I know no investigation or task');
    const schedules = await ask('schedules');
    expect(schedules).toContain('*nightly-echo* — greets the night shift (runs echo) · :double_vertical_bar: paused');
  });

  it('refuses politely, and logs, a request from a channel that is not allowed by someone who is not a member', async () => {
    const body = mention(ELSEWHERE, EVE, 'analyze 203.0.113.66');
    expect((await send(body)).status).toBe(200);
    await ephemeralTo(EVE, 'I only take requests in');
    expect(logged.some((line) => line.includes(`from ${EVE} in ${ELSEWHERE}`) && line.includes('refused'))).toBe(true);
    expect(await workflowExists(`slack-${eventIdOf(body)}`)).toBe(false);

    // Responders act on the world, so only approvers may ask for one from chat (and it then waits for approval).
    const responder = slashCommand(slack, SOC, BOB, 'run blocklist https://example.org/');
    expect((await send(responder)).status).toBe(200);
    await poll(async () => slack.responses.filter((response) => String(response.body.text).includes('only approvers may run it')), (found) => found.length > 0, 'the refusal to run a responder');
    expect(await workflowExists(`slack-${(responder as { form: Record<string, string> }).form.trigger_id}`)).toBe(false);

    // A member of an allowed channel may ask elsewhere, as donbot allowed.
    const member = mention(ELSEWHERE, BOB, 'engines');
    expect((await send(member)).status).toBe(200);
    await threadMessage(ELSEWHERE, eventOf(member).ts, (message) => message.text.includes('Engines'), 'the engines list for a member');
  });

  overHttp("answers Slack's URL verification challenge", async () => {
    const challenge = randomBytes(8).toString('hex');
    const answer = await send({ json: { type: 'url_verification', token: 'x', challenge } });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ challenge });
  });

  it('ignores events it was not asked about, such as messages in channels', async () => {
    const body = eventCallback({ type: 'message', channel: SOC, channel_type: 'channel', user: BOB, text: 'analyze 203.0.113.77', ts: '1.000001' });
    expect((await send(body)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await workflowExists(`slack-${eventIdOf(body)}`)).toBe(false);
  });

  overSocket('connects out with the app token through the configured Slack address, and serves no /slack/events route', async () => {
    const opens = slack.callsTo('apps.connections.open');
    expect(opens.length).toBeGreaterThan(0);
    expect(opens.every((call) => call.token === appToken)).toBe(true);
    expect(slack.socket.connections.at(-1)?.closed).toBeUndefined();

    // Even a correctly signed request finds nothing to talk to: Socket Mode needs no inbound port.
    const body = mention(SOC, BOB, 'analyze 203.0.113.91');
    const answer = await deliver(docket.baseUrl, body, { secret });
    expect(answer.status).toBe(404);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await workflowExists(`slack-${eventIdOf(body)}`)).toBe(false);
  });

  overSocket('reconnects when Slack asks it to (disconnect, refresh_requested) while a job runs, and loses or doubles no message', async () => {
    const command = slashCommand(slack, SOC, BOB, 'run sleepy now');
    const id = `slack-${(command as { form: Record<string, string> }).form.trigger_id}`;
    expect((await send(command)).status).toBe(200);
    const isSleepy = (message: SlackMessageRecord) => !message.thread_ts && message.versions[0].text.includes('Running `sleepy now`');
    await poll(async () => slack.posted(SOC).filter(isSleepy), (found) => found.length === 1, 'the message of run sleepy');
    const opened = slack.socket.connections.length;

    slack.socket.disconnect('refresh_requested');
    // Sent while the app is between connections: Slack holds it for the next one.
    const meanwhile = mention(SOC, BOB, 'analyze 198.51.100.99');
    const delivered = deliverOverSocket(slack, meanwhile);
    await slack.socket.waitForConnection(opened + 1);
    const { ack, attempts } = await delivered;
    expect(slack.socket.connections[opened - 1].closed).toBe('by the app');
    expect(ack.connection).toBe(opened + 1);
    expect(attempts).toHaveLength(1);

    const report = (await docket.client.workflow.getHandle(id).result()) as TaskReport;
    expect(report).toMatchObject({ engine: 'sleepy', status: 'Success' });
    const done = await poll(async () => slack.posted(SOC).filter(isSleepy), (found) => found.length === 1 && found[0].text.includes('awake'), 'the output of run sleepy');
    const thread = eventOf(meanwhile).ts;
    await threadMessage(SOC, thread, isSummary, 'the summary of the investigation asked for between connections');

    const posts = slack.callsTo('chat.postMessage');
    expect(posts.filter((call) => String(call.args.text).includes('Running `sleepy now`'))).toHaveLength(1);
    expect(posts.filter((call) => call.args.thread_ts === thread)).toHaveLength(1);
    expect(done[0].versions.filter((version) => version.text.includes('awake'))).toHaveLength(1);
    expect(slack.posted(SOC).filter((message) => message.thread_ts === thread && !message.deleted)).toHaveLength(1);
  });

  overSocket('reconnects after the connection drops without a close frame and Slack is unreachable for a while, and runs once an event Slack sends again because its ack was lost', async () => {
    const body = mention(SOC, BOB, 'analyze 198.51.100.120');
    const opened = slack.socket.connections.length;
    const opens = slack.callsTo('apps.connections.open').length;
    const lostBefore = slack.socket.lostAcks.length;
    const delivered = deliverOverSocket(slack, body, { loseAcks: 1 });
    await poll(async () => slack.socket.lostAcks.length, (lost) => lost > lostBefore, 'the ack that Slack never gets');
    slack.refuseConnectionOpens = 2;
    slack.socket.drop();

    await slack.socket.waitForConnection(opened + 1);
    const { ack, attempts } = await delivered;
    expect(slack.socket.connections[opened - 1].closed).toBe('dropped');
    expect(slack.refuseConnectionOpens).toBe(0);
    expect(slack.callsTo('apps.connections.open')).toHaveLength(opens + 3);
    expect(attempts.map((attempt) => attempt.retry_attempt)).toEqual([0, 1]);
    expect(ack.connection).toBe(opened + 1);

    const thread = eventOf(body).ts;
    const summary = await threadMessage(SOC, thread, isSummary, 'the summary of the one investigation');
    expect(allText(summary)).toContain('198[.]51[.]100[.]120');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(slack.posted(SOC).filter((message) => message.thread_ts === thread && !message.deleted)).toHaveLength(1);
    const started = await docket.client.workflow.list({ query: `WorkflowId = 'slack-${eventIdOf(body)}'` });
    let runs = 0;
    for await (const _ of started) runs += 1;
    expect(runs).toBe(1);
    expect(logged.some((line) => line.includes(`${eventIdOf(body)} again (retry 1)`))).toBe(true);
  });
});
