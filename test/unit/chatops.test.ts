import { helpText, type Interaction, LEXICON, normalize, parseInteraction, splitArguments } from '../../core/chatops';
import type { InvestigationStatus, ResponseRecord } from '../../core/investigation';
import { APPROVE_ACTION, deciderName, type Links, progressMessage, REJECT_ACTION } from '../../infra/slack-messages';
import { slackSignature, verifySlackSignature } from '../../gateway/slack/signature';

describe('the chatops lexicon', () => {
  it.each<[string, Interaction]>([
    ['analyze hxxps://evil[.]example/x', { kind: 'analyze', text: 'hxxps://evil[.]example/x' }],
    ['Analyse 198.51.100.7 and evil.example', { kind: 'analyze', text: '198.51.100.7 and evil.example' }],
    ['investigate CVE-2021-44228', { kind: 'analyze', text: 'CVE-2021-44228' }],
    ['check\nhxxp://a[.]example/1\nhxxp://b[.]example/2', { kind: 'analyze', text: 'hxxp://a[.]example/1\nhxxp://b[.]example/2' }],
    ['status 6f1c2a9e-1b2c', { kind: 'status', id: '6f1c2a9e-1b2c' }],
    ['STATUS slack-Ev0123', { kind: 'status', id: 'slack-Ev0123' }],
    ['jobs', { kind: 'jobs', limit: 10 }],
    ['jobs 3', { kind: 'jobs', limit: 3 }],
    ['jobs 500', { kind: 'jobs', limit: 50 }],
    ['tasks', { kind: 'jobs', limit: 10 }],
    ['engines', { kind: 'engines' }],
    ['run echo hello world', { kind: 'run', engine: 'echo', args: ['hello', 'world'] }],
    ['run scanner --target "db 1" \'a b\'', { kind: 'run', engine: 'scanner', args: ['--target', 'db 1', 'a b'] }],
    ['run Halo-Scan', { kind: 'run', engine: 'halo-scan', args: [] }],
    ['schedules', { kind: 'schedules' }],
    ['schedule', { kind: 'schedules' }],
    ['help', { kind: 'help', topic: undefined }],
    ['?', { kind: 'help', topic: undefined }],
    ['help run', { kind: 'help', topic: 'run' }],
    ['seen hxxps://evil[.]example/x', { kind: 'seen', value: 'hxxps://evil[.]example/x' }],
    ['Seen "Mozilla/5.0 (X11; Linux)"', { kind: 'seen', value: 'Mozilla/5.0 (X11; Linux)' }],
    ['seen', { kind: 'help', topic: 'seen' }],
  ])('reads %j', (text, expected) => {
    expect(parseInteraction(text)).toEqual(expected);
  });

  it('has a test above for every entry of the table', () => {
    expect(LEXICON.map((entry) => entry.kind).sort()).toEqual(['analyze', 'engines', 'help', 'jobs', 'run', 'schedules', 'seen', 'status']);
  });

  it.each(['', '   ', 'hello there', 'what is the weather', 'deploy prod', 'help me please now', 'statusreport'])('answers %j with the short help', (text) => {
    const parsed = parseInteraction(text);
    expect(parsed.kind).toBe('help');
    expect(helpText(parsed as Extract<Interaction, { kind: 'help' }>)).toContain('What I can do');
  });

  it.each<[string, string]>([
    ['status', 'status'],
    ['status a b', 'status'],
    ['run', 'run'],
    ['engines now', 'engines'],
    ['analyze', 'analyze'],
    ['jobs many', 'jobs'],
  ])('answers a command used wrongly (%j) with its usage', (text, topic) => {
    const parsed = parseInteraction(text);
    expect(parsed).toMatchObject({ kind: 'help', topic });
    expect(helpText(parsed as Extract<Interaction, { kind: 'help' }>)).toContain('Usage:');
  });

  it('says what is wrong with an unclosed quote or an unknown help topic', () => {
    expect(parseInteraction('run echo "hello')).toEqual({ kind: 'help', topic: 'run', problem: 'a " quote is not closed' });
    expect(parseInteraction('help dance')).toEqual({ kind: 'help', problem: 'there is no command dance' });
    expect(helpText({ problem: 'there is no command dance' })).toMatch(/^There is no command dance\.\n/);
  });

  it('takes text with observables but no command as an analysis, as people paste indicators', () => {
    expect(parseInteraction('seen hxxps://evil[.]example/x in the proxy logs')).toEqual({ kind: 'analyze', text: 'seen hxxps://evil[.]example/x in the proxy logs' });
  });

  it('reads Slack text as typed: without the mention, links unwrapped, entities decoded', () => {
    expect(parseInteraction('<@U0BOT> analyze <http://evil.example/a?b=1&amp;c=2|evil.example/a?b=1&amp;c=2>'))
      .toEqual({ kind: 'analyze', text: 'http://evil.example/a?b=1&c=2' });
    expect(normalize('<@U0BOT|docket>: check <mailto:bob@evil.example|bob@evil.example>')).toBe('check bob@evil.example');
    expect(normalize('<@U0BOT> <@U0BOT> jobs')).toBe('jobs');
    expect(normalize('status in <#C0123|soc> &lt;x&gt;')).toBe('status in soc <x>');
    expect(parseInteraction('<@U0BOT> run echo \u201chello world\u201d')).toEqual({ kind: 'run', engine: 'echo', args: ['hello world'] });
  });

  it('splits arguments as a shell would', () => {
    expect(splitArguments('  a  "b c" \'d\'"e" ""  ')).toEqual({ words: ['a', 'b c', 'de', ''] });
    expect(splitArguments('')).toEqual({ words: [] });
  });

  it('lists every command in the help, with the slash command when asked through it', () => {
    const help = helpText({}, '/docket');
    for (const entry of LEXICON) expect(help).toContain(`/docket ${entry.usage}`);
    expect(helpText({ topic: 'status' })).toBe('Usage: `status <investigation id>` — where an investigation or task is, or its result.');
  });
});

describe("Slack's request signature", () => {
  const secret = '8f742231b10e8888abcd99yyyzzz85a5';
  const body = 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fdocket&text=jobs';

  it('matches the signature Slack documents for its example request', () => {
    // Slack's own example (api.slack.com, "Verifying requests from Slack").
    const example = 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    expect(slackSignature(secret, 1531420618, example)).toBe('v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503');
  });

  it('accepts a request signed within five minutes, either way', () => {
    const now = 1_700_000_000_000;
    for (const skew of [0, -299, 299]) {
      const timestamp = String(now / 1000 + skew);
      expect(verifySlackSignature(secret, { timestamp, signature: slackSignature(secret, timestamp, body) }, body, now)).toEqual({ ok: true });
    }
  });

  it('refuses an old or future timestamp, a wrong signature, a changed body and missing headers', () => {
    const now = 1_700_000_000_000;
    const at = (skew: number) => String(now / 1000 + skew);
    const check = (timestamp: string | undefined, signature: string | undefined, text = body) => verifySlackSignature(secret, { timestamp, signature }, text, now);
    expect(check(at(-301), slackSignature(secret, at(-301), body))).toMatchObject({ ok: false, reason: expect.stringContaining('window') });
    expect(check(at(301), slackSignature(secret, at(301), body))).toMatchObject({ ok: false });
    expect(check(at(0), slackSignature('another secret', at(0), body))).toMatchObject({ ok: false, reason: expect.stringContaining('does not match') });
    expect(check(at(0), slackSignature(secret, at(0), body), `${body}&x=1`)).toMatchObject({ ok: false });
    expect(check(at(0), 'v0=short')).toMatchObject({ ok: false });
    expect(check(undefined, slackSignature(secret, at(0), body))).toMatchObject({ ok: false, reason: expect.stringContaining('header') });
    expect(check('yesterday', 'v0=x')).toMatchObject({ ok: false, reason: expect.stringContaining('Unix time') });
  });
});

describe('Slack messages', () => {
  const links: Links = { console: 'http://docket.test/console/', temporalUi: 'http://temporal.test:8233', namespace: 'default' };
  const response = (approval: ResponseRecord['approval']): ResponseRecord => ({
    id: 'r1', responder: 'blocklist', rule: 'block malicious', observable: { type: 'url', data: 'https://evil.example/x' }, approval,
  });
  const status = (responses: ResponseRecord[]): InvestigationStatus => ({
    id: 'inv-1', phase: 'responding', jobs: [{ engine: 'ioc-lookup', subject: 'url https://evil.example/x', state: 'success' }],
    verdicts: { bySubject: { 'url:https://evil.example/x': 'malicious' }, overall: 'malicious' }, responses,
  });
  const buttons = (message: { blocks: any[] }) => message.blocks.filter((block) => block.type === 'actions').flatMap((block) => block.elements.map((element: any) => element.action_id));
  const text = (message: { blocks: unknown[] }) => JSON.stringify(message.blocks);

  it('offers Approve and Reject for a pending response, carrying the investigation and the response', () => {
    const message = progressMessage(status([response({ state: 'pending', expiresAt: '2030-01-01T00:00:00.000Z' })]), links);
    expect(buttons(message)).toEqual([APPROVE_ACTION, REJECT_ACTION]);
    const button = (message.blocks.find((block) => block.type === 'actions') as any).elements[0];
    expect(JSON.parse(button.value)).toEqual({ id: 'inv-1', response: 'r1' });
    expect(message.text).toContain('1 response(s) wait for approval');
  });

  it('names who decided, as a Slack mention for Slack users, and shows an expired approval as expired, without buttons', () => {
    const approved = progressMessage(status([response({ state: 'approved', by: deciderName({ id: 'UALICE01', username: 'alice' }) })]), links);
    expect(buttons(approved)).toEqual([]);
    expect(text(approved)).toContain('approved by <@UALICE01>');
    const rejected = progressMessage(status([response({ state: 'rejected', by: 'ci-key', reason: 'shared <hosting>' })]), links);
    expect(text(rejected)).toContain('rejected by ci-key (shared &lt;hosting&gt;)');
    const expired = progressMessage(status([response({ state: 'expired' })]), links);
    expect(buttons(expired)).toEqual([]);
    expect(text(expired)).toContain('expired without a decision');
  });

  it('shows observables defanged and links to the console and the Temporal Web UI', () => {
    const message = progressMessage(status([]), links);
    expect(text(message)).toContain('hxxps[://]evil[.]example/x');
    expect(text(message)).not.toContain('https://evil.example');
    expect(text(message)).toContain('http://docket.test/console/#/investigations/inv-1');
    expect(text(message)).toContain('http://temporal.test:8233/namespaces/default/workflows/inv-1');
  });
});
