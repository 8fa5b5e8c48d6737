import { tmpdir } from 'node:os';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { silentLogger } from '../../infra/log';
import { createSlackNotifier } from '../../activities/slack-notifier';
import { sealSlackMessage } from '../../infra/slack-client';
import { loadConfig } from '../../core/config';
import { InvestigationInput } from '../../core/investigation';
import {
  checkSlackChannel, checkUnsealedSlackChannel, checkWebhook, notifyRefusal, settingList, webhookAllowEntryProblem,
} from '../../core/notify-targets';

describe('webhook allow list (DOCKET_WEBHOOK_ALLOW)', () => {
  const allow = ['http://127.0.0.1:999', 'https://hooks.example.org/hooks', 'https://bücher.example/in/', 'http://[::1]:8080/x'];

  it.each([
    ['the entry itself', 'https://hooks.example.org/hooks'],
    ['a path below the entry', 'https://hooks.example.org/hooks/docket'],
    ['a path below the entry with a query', 'https://hooks.example.org/hooks/docket?team=soc'],
    ['the entry with a trailing slash', 'https://hooks.example.org/hooks/'],
    ['an explicit default port', 'https://hooks.example.org:443/hooks/x'],
    ['an upper-case scheme and host', 'HTTPS://HOOKS.EXAMPLE.ORG/hooks/x'],
    ['the host with one trailing dot', 'https://hooks.example.org./hooks/x'],
    ['any path under an origin-only entry', 'http://127.0.0.1:999/anything/at/all'],
    ['an IDN host in Unicode, listed in Unicode', 'https://bücher.example/in/x'],
    ['an IDN host in punycode, listed in Unicode', 'https://xn--bcher-kva.example/in/x'],
    ['the path of an entry written with a trailing slash, without it', 'https://bücher.example/in'],
    ['a bracketed IPv6 host', 'http://[::1]:8080/x/y'],
    ['a decimal spelling of the same IPv4 address', 'http://2130706433:999/x'],
  ])('admits %s: %s', (_, url) => {
    expect(checkWebhook(url, allow).ok).toBe(true);
  });

  it.each([
    ['a longer port that starts with the allowed one', 'http://127.0.0.1:9990/hooks'],
    ['another port on the allowed host', 'http://127.0.0.1:998/'],
    ['the allowed port with no port at all', 'http://127.0.0.1/'],
    ['a host that extends the allowed one', 'https://hooks.example.org.attacker.net/hooks'],
    ['a host that ends with the allowed one', 'https://evilhooks.example.org/hooks'],
    ['a sibling path sharing the prefix', 'https://hooks.example.org/hooksx'],
    ['a sibling path sharing the prefix, under it', 'https://hooks.example.org/hooks-admin/x'],
    ['a parent path', 'https://hooks.example.org/'],
    ['a path that climbs out with ..', 'https://hooks.example.org/hooks/../admin'],
    ['a path that climbs out with encoded dots', 'https://hooks.example.org/hooks/%2e%2e/admin'],
    ['an encoded slash', 'https://hooks.example.org/hooks%2F..%2Fadmin'],
    ['an encoded backslash', 'https://hooks.example.org/hooks/..%5Cadmin'],
    ['the allowed host as user info', 'https://hooks.example.org@evil.example/hooks'],
    ['user info on the allowed host', 'https://user:pass@hooks.example.org/hooks'],
    ['http where https is allowed', 'http://hooks.example.org/hooks'],
    ['https where http is allowed', 'https://127.0.0.1:999/'],
    ['a non-http scheme', 'ftp://hooks.example.org/hooks'],
    ['a file URL', 'file:///etc/passwd'],
    ['a javascript URL', 'javascript:alert(1)'],
    ['a look-alike host in Cyrillic', 'https://hооks.example.org/hooks'],
    ['two trailing dots', 'https://hooks.example.org../hooks'],
    ['a path that differs in letter case', 'https://hooks.example.org/Hooks'],
    ['not a URL at all', 'hooks.example.org/hooks'],
    ['an empty string', ''],
  ])('refuses %s: %s', (_, url) => {
    const checked = checkWebhook(url, allow);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.reason).toContain(`webhook ${url} is not allowed by DOCKET_WEBHOOK_ALLOW: `);
  });

  it('names DOCKET_WEBHOOK_ALLOW when it refuses a URL outside it', () => {
    expect(checkWebhook('https://elsewhere.example/x', allow)).toEqual({ ok: false, reason: expect.stringContaining('DOCKET_WEBHOOK_ALLOW') });
  });

  it('refuses every webhook while the allow list is empty, and says so', () => {
    expect(checkWebhook('https://hooks.example.org/hooks', [])).toEqual({ ok: false, reason: expect.stringContaining('DOCKET_WEBHOOK_ALLOW: the setting is empty') });
  });

  it('answers the normalized URL, so what is delivered to is what was checked', () => {
    expect(checkWebhook('HTTPS://HOOKS.example.org:443/hooks/x?a=1', allow)).toEqual({ ok: true, url: 'https://hooks.example.org/hooks/x?a=1' });
  });

  it.each([
    ['hooks.example.org', 'is not a URL'],
    ['ftp://hooks.example.org', 'is not an http(s) URL'],
    ['https://user@hooks.example.org', 'user name or password'],
    ['https://hooks.example.org/x?token=1', 'query or fragment'],
    ['https://hooks.example.org/x#y', 'query or fragment'],
  ])('refuses the allow entry %p (%s)', (entry, problem) => {
    expect(webhookAllowEntryProblem(entry)).toContain(problem);
    expect(checkWebhook('https://hooks.example.org/x', [entry]).ok).toBe(false);
  });

  it('stops Docket at start when an allow entry is unusable, naming the setting and the entry', () => {
    expect(() => loadConfig({ DOCKET_WEBHOOK_ALLOW: 'https://ok.example/x, hooks.example.org' }))
      .toThrow(/DOCKET_WEBHOOK_ALLOW: entry hooks\.example\.org is not a URL/);
    expect(loadConfig({ DOCKET_WEBHOOK_ALLOW: ' https://ok.example/x , http://127.0.0.1:999 ' }).DOCKET_WEBHOOK_ALLOW).toContain('ok.example');
  });

  it('reads a comma-separated setting without blanks', () => {
    expect(settingList(' a, ,b ,')).toEqual(['a', 'b']);
  });
});

describe('Slack channels a request may name (DOCKET_SLACK_CHANNELS)', () => {
  it('admits a served channel and refuses another, naming the setting', () => {
    expect(checkSlackChannel('CSOC0001', ['CSOC0001'])).toEqual({ ok: true });
    expect(checkSlackChannel('CRANDOM01', ['CSOC0001'])).toEqual({ ok: false, reason: expect.stringContaining('DOCKET_SLACK_CHANNELS') });
  });

  it('refuses every channel while DOCKET_SLACK_CHANNELS is empty: "everyone may ask" is for people in Slack', () => {
    expect(checkSlackChannel('CSOC0001', [])).toEqual({ ok: false, reason: expect.stringContaining('DOCKET_SLACK_CHANNELS is empty') });
  });

  it('compares channel ids exactly', () => {
    expect(checkSlackChannel('csoc0001', ['CSOC0001']).ok).toBe(false);
    expect(checkSlackChannel('CSOC0001 ', ['CSOC0001']).ok).toBe(false);
  });

  it("lets a schedule's channel stand, since the operator wrote it, and holds every other source to the served channels", () => {
    expect(checkUnsealedSlackChannel('#security', 'schedule', [])).toEqual({ ok: true });
    for (const source of ['http', 'slack', 'event', 'cli', undefined] as const) expect(checkUnsealedSlackChannel('#security', source, []).ok).toBe(false);
  });
});

describe("an API request's notify", () => {
  const limits = { webhookUrl: 'https://central.example/docket', webhookAllow: ['https://hooks.example.org/hooks'], slackChannels: ['CSOC0001'] };
  const notify = (value: unknown) => InvestigationInput.parse({ text: 'x', notify: value }).notify;

  it('lets allowed targets stand', () => {
    expect(notifyRefusal(undefined, limits)).toBeUndefined();
    expect(notifyRefusal(notify({ webhook: 'https://hooks.example.org/hooks/x', slack: { channel: 'CSOC0001', thread: '1718000000.000100' } }), limits)).toBeUndefined();
    expect(notifyRefusal(notify({ webhook: 'https://central.example/docket' }), { ...limits, webhookAllow: [] })).toBeUndefined();
  });

  it('refuses a channel Docket does not serve, and a webhook outside the allow list, naming the setting', () => {
    expect(notifyRefusal(notify({ slack: { channel: 'CRANDOM01' } }), limits)).toMatch(/^notify\.slack: .*DOCKET_SLACK_CHANNELS/);
    expect(notifyRefusal(notify({ webhook: 'https://hooks.example.org/hooksx' }), limits)).toMatch(/^notify\.webhook: .*DOCKET_WEBHOOK_ALLOW/);
  });

  it("refuses Docket's own message and seal: only its Slack entry point sets them", () => {
    expect(notifyRefusal(notify({ slack: { channel: 'CSOC0001', message: '1718000000.000100' } }), limits)).toContain('notify.slack.message');
    expect(notifyRefusal(notify({ slack: { channel: 'CSOC0001', seal: 'x' } }), limits)).toContain('set by Docket itself');
  });

  it('takes only a Slack message ts as the thread', () => {
    expect(InvestigationInput.safeParse({ text: 'x', notify: { slack: { channel: 'CSOC0001', thread: 'latest' } } }).success).toBe(false);
  });
});

describe("the worker's Slack targets", () => {
  const botToken = 'xoxb-unit-test';
  const notifier = createSlackNotifier({
    botToken, apiUrl: 'http://127.0.0.1:9/api/', blobs: new FsBlobStore(tmpdir()), log: silentLogger, channels: ['CSOC0001'],
    links: { console: 'http://docket.test/console/', temporalUi: 'http://docket.test:8233', namespace: 'default' },
  });
  const ts = '1718000000.000100';
  const sealed = (workflowId: string, channel = 'DBOB0001', message = ts) => ({ channel, message, seal: sealSlackMessage(botToken, workflowId, channel, message) });

  it('edits the message the Slack entry point sealed for this workflow, in any conversation it came from', () => {
    expect(notifier.slackTarget('slack-Ev1', sealed('slack-Ev1'), 'slack')).toEqual({ name: 'slack DBOB0001', kind: 'slack', channel: 'DBOB0001', message: ts });
  });

  it.each([
    ['sealed for another workflow', 'slack-Ev1', sealed('slack-Ev2')],
    ['sealed for another channel', 'slack-Ev1', { ...sealed('slack-Ev1', 'CSOC0001'), channel: 'DBOB0001' }],
    ['sealed for another message', 'slack-Ev1', { ...sealed('slack-Ev1'), message: '1718000000.000101' }],
    ['sealed with another key', 'slack-Ev1', { ...sealed('slack-Ev1'), seal: sealSlackMessage('xoxb-other', 'slack-Ev1', 'DBOB0001', ts) }],
    ['without a seal', 'slack-Ev1', { channel: 'CSOC0001', message: ts }],
    ['with a seal and no message', 'slack-Ev1', { channel: 'CSOC0001', seal: sealed('slack-Ev1').seal }],
  ])('refuses a message %s, even in a served channel', (_, workflowId, requested) => {
    const target = notifier.slackTarget(workflowId, requested, 'slack');
    expect(target.refused).toContain('was not posted by Docket');
    expect(target.message).toBeUndefined();
  });

  it('posts in a served channel (in the thread given) with no message of its own yet, and refuses another channel', () => {
    expect(notifier.slackTarget('api-1', { channel: 'CSOC0001', thread: ts }, 'http')).toEqual({ name: 'slack CSOC0001', kind: 'slack', channel: 'CSOC0001', thread: ts });
    expect(notifier.slackTarget('api-1', { channel: 'CRANDOM01' }, 'http').refused).toContain('DOCKET_SLACK_CHANNELS');
    expect(notifier.slackTarget('sched-1', { channel: '#security' }, 'schedule').refused).toBeUndefined();
  });
});

