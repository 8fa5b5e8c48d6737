import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DeliveryOptions, type DeliveryResult, FakeSlackSocket } from './fake-slack-socket';

/**
 * A stand-in for Slack on loopback: the Web API methods Docket calls (answered as Slack answers),
 * file downloads that need the bot token as Slack's do, and response URLs for slash commands. It
 * records every call so a test can read what Docket said in Slack. Only Slack is faked; Docket
 * talks to it through Bolt's and the Web API client's `slackApiUrl`, as to a proxy. Given an app
 * token, it also serves Socket Mode: `apps.connections.open` answers a ws:// URL on this server,
 * where `socket` (fake-slack-socket.ts) speaks Slack's envelope protocol.
 */
export interface SlackCall {
  method: string;
  args: Record<string, any>;
  token?: string;
  at: number;
}

export interface SlackMessageRecord {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks: any[];
  /** Every version of the message: the posted one first, then each edit. */
  versions: Array<{ text: string; blocks: any[] }>;
  deleted?: boolean;
}

interface StoredFile {
  id: string;
  name: string;
  mimetype: string;
  content: Buffer;
}

export const BOT_USER = 'UDOCKETBOT';
export const BOT_ID = 'BDOCKET';
export const TEAM = 'TDOCKET';

export class FakeSlack {
  readonly calls: SlackCall[] = [];
  readonly messages = new Map<string, SlackMessageRecord>();
  readonly responses: Array<{ path: string; body: any }> = [];
  readonly downloads: Array<{ file: string; authorized: boolean }> = [];
  /** Members Slack reports for a channel (conversations.members). */
  readonly members = new Map<string, string[]>();
  private readonly files = new Map<string, StoredFile>();
  private server?: Server;
  private sequence = 0;
  url = '';
  /** Slack's side of Socket Mode; used when the app holds `appToken`. */
  readonly socket = new FakeSlackSocket();
  /** The next this many apps.connections.open calls get a 503, as from a proxy or firewall in the way. */
  refuseConnectionOpens = 0;

  /** `appToken` (`xapp-…`) is the only token apps.connections.open takes, as in Slack. */
  constructor(readonly botToken: string, readonly appToken?: string) {}

  async start(): Promise<this> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error) => {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ ok: false, error: `fake_slack_failed: ${(error as Error).message}` }));
      });
    });
    this.server.on('upgrade', (request, socket, head) => this.socket.accept(request, socket, head));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this;
  }

  /** Bolt's `slackApiUrl`. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  async close(): Promise<void> {
    this.socket.close();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** A file Slack would describe in files.info and serve to the bot token. */
  addFile(name: string, content: Buffer | string, mimetype = 'text/plain'): string {
    const id = `F${randomBytes(5).toString('hex').toUpperCase()}`;
    this.files.set(id, { id, name, mimetype, content: Buffer.from(content) });
    return id;
  }

  /** A response URL, as Slack gives one with each slash command and interaction. */
  responseUrl(): string {
    return `${this.url}/response/${randomBytes(6).toString('hex')}`;
  }

  callsTo(method: string): SlackCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** Messages the bot posted in a channel (or in one thread of it). */
  posted(channel: string, thread?: string): SlackMessageRecord[] {
    return [...this.messages.values()].filter((message) => message.channel === channel && (thread === undefined || message.thread_ts === thread));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.url);
    const body = await readBody(request);
    if (url.pathname.startsWith('/api/')) {
      const args = parseArgs(body, String(request.headers['content-type'] ?? ''));
      const token = (request.headers.authorization ?? '').replace(/^Bearer /, '') || args.token;
      const method = url.pathname.slice('/api/'.length);
      this.calls.push({ method, args, token, at: Date.now() });
      if (method === 'apps.connections.open' && this.refuseConnectionOpens > 0) {
        this.refuseConnectionOpens -= 1;
        response.writeHead(503, { 'content-type': 'text/plain' }).end('the proxy cannot reach slack.com');
        return;
      }
      const answer = this.authorized(method, token) ?? this.answer(method, args);
      response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(answer));
      return;
    }
    if (url.pathname.startsWith('/files/')) {
      const id = url.pathname.split('/')[2];
      const file = this.files.get(id);
      const authorized = request.headers.authorization === `Bearer ${this.botToken}`;
      this.downloads.push({ file: id, authorized });
      if (!file) {
        response.writeHead(404).end();
      } else if (!authorized) {
        // What Slack does without the token: its sign-in page, with a 200.
        response.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in to Slack</html>');
      } else {
        response.writeHead(200, { 'content-type': file.mimetype, 'content-length': file.content.length }).end(file.content);
      }
      return;
    }
    if (url.pathname.startsWith('/response/')) {
      this.responses.push({ path: url.pathname, body: JSON.parse(body.toString('utf8') || '{}') });
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    response.writeHead(404).end();
  }

  /** Slack's refusal of a call with the wrong kind of token, or none when the token fits the method. */
  private authorized(method: string, token: string | undefined): Record<string, unknown> | undefined {
    const appMethod = method === 'apps.connections.open';
    if (token === (appMethod ? this.appToken : this.botToken) && token) return undefined;
    if (token === this.botToken || (token === this.appToken && token)) return { ok: false, error: 'not_allowed_token_type' };
    return { ok: false, error: 'invalid_auth' };
  }

  private answer(method: string, args: Record<string, any>): Record<string, unknown> {
    switch (method) {
      case 'apps.connections.open':
        return { ok: true, url: this.socket.open(this.url) };
      case 'auth.test':
        return { ok: true, url: 'https://docket-test.slack.com/', team: 'Docket test', user: 'docket', team_id: TEAM, user_id: BOT_USER, bot_id: BOT_ID };
      case 'chat.postMessage': {
        const ts = this.nextTs();
        const message: SlackMessageRecord = {
          channel: args.channel, ts, thread_ts: args.thread_ts, text: args.text ?? '', blocks: args.blocks ?? [],
          versions: [{ text: args.text ?? '', blocks: args.blocks ?? [] }],
        };
        this.messages.set(ts, message);
        return { ok: true, channel: args.channel, ts, message: { type: 'message', text: message.text, user: BOT_USER, bot_id: BOT_ID, ts } };
      }
      case 'chat.update': {
        const message = this.messages.get(args.ts);
        if (!message || message.channel !== args.channel || message.deleted) return { ok: false, error: 'message_not_found' };
        message.text = args.text ?? message.text;
        message.blocks = args.blocks ?? message.blocks;
        message.versions.push({ text: message.text, blocks: message.blocks });
        return { ok: true, channel: args.channel, ts: args.ts, text: message.text };
      }
      case 'chat.delete': {
        const message = this.messages.get(args.ts);
        if (!message) return { ok: false, error: 'message_not_found' };
        message.deleted = true;
        return { ok: true, channel: args.channel, ts: args.ts };
      }
      case 'chat.postEphemeral':
        return { ok: true, message_ts: this.nextTs() };
      case 'conversations.members':
        return { ok: true, members: this.members.get(args.channel) ?? [], response_metadata: { next_cursor: '' } };
      case 'files.info': {
        const file = this.files.get(args.file);
        if (!file) return { ok: false, error: 'file_not_found' };
        const download = `${this.url}/files/${file.id}/${encodeURIComponent(file.name)}`;
        return {
          ok: true,
          file: { id: file.id, name: file.name, title: file.name, mimetype: file.mimetype, size: file.content.length, url_private: download, url_private_download: `${download}?download=1` },
        };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  private nextTs(): string {
    this.sequence += 1;
    return `${Math.floor(Date.now() / 1000)}.${String(this.sequence).padStart(6, '0')}`;
  }
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The Web API client sends forms whose object values (blocks) are JSON; some callers send JSON. */
function parseArgs(body: Buffer, contentType: string): Record<string, any> {
  const text = body.toString('utf8');
  if (contentType.includes('application/json')) return text ? JSON.parse(text) : {};
  const args: Record<string, any> = Object.fromEntries(new URLSearchParams(text));
  for (const key of ['blocks', 'attachments']) {
    if (typeof args[key] === 'string') args[key] = JSON.parse(args[key]);
  }
  return args;
}

/** Signs a body exactly as Slack does: `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export function signSlack(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SlackDelivery {
  secret: string;
  /** Unix seconds; now unless given (an old one tests the replay window). */
  timestamp?: number;
  /** Slack's retry counter, sent as X-Slack-Retry-Num. */
  retry?: number;
  /** A signature to send instead of the right one. */
  signature?: string;
}

export type SlackBody = { json: Record<string, unknown> } | { form: Record<string, string> };

/** A request to Docket's /slack/events as Slack sends it: the body as Slack encodes it, and signed. */
export async function deliver(gatewayUrl: string, body: SlackBody, options: SlackDelivery): Promise<{ status: number; text: string; ms: number }> {
  const raw = 'json' in body ? JSON.stringify(body.json) : new URLSearchParams(body.form).toString();
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'json' in body ? 'application/json' : 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': options.signature ?? signSlack(options.secret, timestamp, raw),
    'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
  };
  if (options.retry) {
    headers['x-slack-retry-num'] = String(options.retry);
    headers['x-slack-retry-reason'] = 'http_timeout';
  }
  const started = performance.now();
  const response = await fetch(`${gatewayUrl}/slack/events`, { method: 'POST', headers, body: raw });
  const text = await response.text();
  return { status: response.status, text, ms: performance.now() - started };
}

/**
 * The same request as Slack sends it over Socket Mode: no signature, the body as an envelope's
 * payload (events as `events_api`, slash commands as `slash_commands` with the form's fields,
 * interactions as `interactive` with the parsed payload), settled by the app's ack on the socket.
 */
export function deliverOverSocket(slack: FakeSlack, body: SlackBody, options: DeliveryOptions = {}): Promise<DeliveryResult> {
  if ('json' in body) return slack.socket.deliver('events_api', body.json, options);
  if (typeof body.form.payload === 'string') return slack.socket.deliver('interactive', JSON.parse(body.form.payload), options);
  return slack.socket.deliver('slash_commands', body.form, options);
}

let eventSequence = 0;

export function eventId(): string {
  eventSequence += 1;
  return `Ev${randomBytes(4).toString('hex').toUpperCase()}${eventSequence}`;
}

/** An Events API callback wrapping one event. */
export function eventCallback(event: Record<string, unknown>, id = eventId()): SlackBody {
  return {
    json: {
      token: 'deprecated-verification-token', team_id: TEAM, api_app_id: 'ADOCKET', type: 'event_callback', event_id: id,
      event_time: Math.floor(Date.now() / 1000), authorizations: [{ team_id: TEAM, user_id: BOT_USER, is_bot: true }],
      event: { event_ts: slackTs(), ...event },
    },
  };
}

export function slackTs(): string {
  eventSequence += 1;
  return `${Math.floor(Date.now() / 1000)}.${String(500000 + eventSequence).padStart(6, '0')}`;
}

/** A mention of the bot in a channel. */
export function mention(channel: string, user: string, text: string, extra: Record<string, unknown> = {}): SlackBody {
  return eventCallback({ type: 'app_mention', channel, user, text: `<@${BOT_USER}> ${text}`, ts: slackTs(), ...extra });
}

/** A direct message to the bot. */
export function directMessage(channel: string, user: string, text: string, extra: Record<string, unknown> = {}): SlackBody {
  return eventCallback({ type: 'message', channel, channel_type: 'im', user, text, ts: slackTs(), ...extra });
}

/** `/docket <text>`, as Slack posts a slash command. */
export function slashCommand(slack: FakeSlack, channel: string, user: string, text: string): SlackBody {
  return {
    form: {
      token: 'deprecated-verification-token', team_id: TEAM, team_domain: 'docket-test', channel_id: channel, channel_name: 'soc',
      user_id: user, user_name: user.toLowerCase(), command: '/docket', text, api_app_id: 'ADOCKET',
      response_url: slack.responseUrl(), trigger_id: `${Date.now()}.${randomBytes(4).toString('hex')}.${eventId()}`,
    },
  };
}

/** A press of a button on one of the bot's messages (an interactive payload). */
export function buttonPress(slack: FakeSlack, message: SlackMessageRecord, actionId: string, user: { id: string; username: string }): SlackBody {
  const block = message.blocks.find((candidate: any) => candidate.type === 'actions' && candidate.elements.some((element: any) => element.action_id === actionId));
  if (!block) throw new Error(`the message has no ${actionId} button: ${JSON.stringify(message.blocks)}`);
  const button = block.elements.find((element: any) => element.action_id === actionId);
  const payload = {
    type: 'block_actions', team: { id: TEAM, domain: 'docket-test' }, user: { id: user.id, username: user.username, name: user.username, team_id: TEAM },
    api_app_id: 'ADOCKET', token: 'deprecated-verification-token', trigger_id: `${Date.now()}.${randomBytes(4).toString('hex')}`,
    container: { type: 'message', message_ts: message.ts, channel_id: message.channel, is_ephemeral: false },
    channel: { id: message.channel, name: 'soc' },
    message: { type: 'message', ts: message.ts, thread_ts: message.thread_ts, text: message.text, blocks: message.blocks, user: BOT_USER, bot_id: BOT_ID },
    response_url: slack.responseUrl(),
    actions: [{ type: 'button', action_id: button.action_id, block_id: block.block_id, text: button.text, value: button.value, style: button.style, action_ts: slackTs() }],
  };
  return { form: { payload: JSON.stringify(payload) } };
}
