import type { InvestigationInput, Source } from './investigation';

/**
 * Where an investigation may send its report when the request names the place: a webhook only under
 * an entry of DOCKET_WEBHOOK_ALLOW, a Slack channel only among DOCKET_SLACK_CHANNELS. The gateway asks
 * this before it starts anything, and the main worker asks again before it sends anything.
 */

export type Allowed = { ok: true } | { ok: false; reason: string };

/** An entry of DOCKET_WEBHOOK_ALLOW, parsed: an origin, and a path that admits itself and what lies below it. */
interface AllowEntry {
  protocol: string;
  host: string;
  port: string;
  /** Without its trailing slash; empty for the whole origin. */
  path: string;
}

const WEB_SCHEMES = new Set(['http:', 'https:']);
/** An encoded `/` or `\` would let a receiver that decodes before routing step out of an allowed path. */
const ENCODED_SEPARATOR = /%(2f|5c)/i;

/** A comma-separated setting as its list of entries. */
export function settingList(value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter(Boolean);
}

/** What is wrong with one DOCKET_WEBHOOK_ALLOW entry, or undefined when it is usable. */
export function webhookAllowEntryProblem(entry: string): string | undefined {
  const parsed = parseAllowEntry(entry);
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * Whether DOCKET_WEBHOOK_ALLOW admits a webhook URL: same scheme, host and port as an entry (default
 * ports, letter case, IDN spelling and one trailing dot do not matter), and a path equal to the
 * entry's or below it at a `/`. On success, `url` is the normalized URL to deliver to, so what was
 * checked is what gets called.
 */
export function checkWebhook(url: string, allow: readonly string[]): { ok: true; url: string } | { ok: false; reason: string } {
  const refused = (why: string) => ({ ok: false as const, reason: `webhook ${url} is not allowed by DOCKET_WEBHOOK_ALLOW: ${why}` });
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return refused('it is not a URL');
  }
  if (!WEB_SCHEMES.has(target.protocol)) return refused('only http(s) URLs are');
  if (target.username || target.password) return refused('it carries a user name or password (user@host); give the host alone');
  if (ENCODED_SEPARATOR.test(target.pathname)) return refused('its path has an encoded / or \\');
  const entries = allow.map(parseAllowEntry).filter((entry): entry is AllowEntry => typeof entry !== 'string');
  if (!entries.length) return refused('the setting is empty, so an investigation may name no webhook of its own');
  const host = hostKey(target.hostname);
  const admitted = entries.some((entry) => entry.protocol === target.protocol && entry.host === host && entry.port === target.port
    && (entry.path === '' || target.pathname === entry.path || target.pathname.startsWith(`${entry.path}/`)));
  if (!admitted) return refused('it is under none of its entries (an origin, and a path matched at a /); name a URL under one, or leave notify.webhook out');
  return { ok: true, url: target.href };
}

/**
 * Whether Docket posts to a Slack channel a request named. DOCKET_SLACK_CHANNELS lists the channels
 * Docket serves; when it is empty, anyone in Slack may ask Docket, but nobody may aim its messages
 * from outside Slack, so every such channel is refused.
 */
export function checkSlackChannel(channel: string, served: readonly string[]): Allowed {
  if (!served.length) {
    return { ok: false, reason: `Slack channel ${channel} is not allowed: DOCKET_SLACK_CHANNELS is empty, so requests from outside Slack may name no channel; list the channel ids Docket serves there` };
  }
  if (!served.includes(channel)) {
    return { ok: false, reason: `Slack channel ${channel} is not one Docket serves (DOCKET_SLACK_CHANNELS); name one of those channel ids, or leave notify.slack out` };
  }
  return { ok: true };
}

export interface NotifyLimits {
  /** DOCKET_WEBHOOK_URL: every investigation reports there already, so asking for it is harmless. */
  webhookUrl?: string;
  /** DOCKET_WEBHOOK_ALLOW, as a list. */
  webhookAllow: readonly string[];
  /** DOCKET_SLACK_CHANNELS, as a list. */
  slackChannels: readonly string[];
}

/**
 * Why the API refuses the `notify` of a request, or undefined when it may stand. `notify.slack.message`
 * and `seal` belong to Docket's own Slack entry point (the message it posted for the request), so an
 * API caller may not set them.
 */
export function notifyRefusal(notify: InvestigationInput['notify'], limits: NotifyLimits): string | undefined {
  const slack = notify?.slack;
  if (slack && (slack.message !== undefined || slack.seal !== undefined)) {
    return 'notify.slack.message and notify.slack.seal are set by Docket itself for requests made in Slack; give notify.slack.channel, and thread to be answered in a thread';
  }
  if (slack) {
    const channel = checkSlackChannel(slack.channel, limits.slackChannels);
    if (!channel.ok) return `notify.slack: ${channel.reason}`;
  }
  const webhook = notify?.webhook;
  if (webhook !== undefined && webhook !== limits.webhookUrl) {
    const checked = checkWebhook(webhook, limits.webhookAllow);
    if (!checked.ok) return `notify.webhook: ${checked.reason}`;
  }
  return undefined;
}

/**
 * Whether the worker may post to the Slack channel an input names without Docket's seal: one of the
 * served channels, or any channel a schedule file names (the operator wrote it, nobody sent it).
 */
export function checkUnsealedSlackChannel(channel: string, source: Source | undefined, served: readonly string[]): Allowed {
  if (source === 'schedule') return { ok: true };
  return checkSlackChannel(channel, served);
}

function parseAllowEntry(entry: string): AllowEntry | string {
  let parsed: URL;
  try {
    parsed = new URL(entry);
  } catch {
    return `entry ${entry} is not a URL: give an origin and an optional path, such as https://hooks.example.org/docket`;
  }
  if (!WEB_SCHEMES.has(parsed.protocol)) return `entry ${entry} is not an http(s) URL`;
  if (parsed.username || parsed.password) return `entry ${entry} carries a user name or password; give the origin alone`;
  if (parsed.search || parsed.hash || entry.includes('?') || entry.includes('#')) {
    return `entry ${entry} has a query or fragment; give an origin and an optional path`;
  }
  if (ENCODED_SEPARATOR.test(parsed.pathname)) return `entry ${entry} has an encoded / or \\ in its path`;
  return { protocol: parsed.protocol, host: hostKey(parsed.hostname), port: parsed.port, path: parsed.pathname.replace(/\/+$/, '') };
}

/** `hooks.example.org.` names the same host as `hooks.example.org`; anything else must match exactly. */
function hostKey(hostname: string): string {
  return hostname.endsWith('.') && !hostname.endsWith('..') ? hostname.slice(0, -1) : hostname;
}
