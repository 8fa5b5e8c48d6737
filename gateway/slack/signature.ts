import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack refuses requests older than this, to stop replays; so do we, in both directions. */
export const SLACK_WINDOW_SECONDS = 5 * 60;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/** `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the signing secret, as Slack signs. */
export function slackSignature(secret: string, timestamp: string | number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/**
 * Checks Slack's `X-Slack-Signature` over the raw body, bytes as they arrived: any parsing first
 * would change what was signed.
 */
export function verifySlackSignature(
  secret: string,
  headers: { timestamp?: string; signature?: string },
  body: string,
  nowMs = Date.now(),
): SignatureCheck {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature) return { ok: false, reason: 'the request has no X-Slack-Signature or X-Slack-Request-Timestamp header' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'X-Slack-Request-Timestamp is not a Unix time' };
  const skew = Math.abs(Math.floor(nowMs / 1000) - Number(timestamp));
  if (skew > SLACK_WINDOW_SECONDS) return { ok: false, reason: `the request was signed ${skew}s away from now; Slack's window is ${SLACK_WINDOW_SECONDS}s` };
  const expected = Buffer.from(slackSignature(secret, timestamp, body));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'the signature does not match the signing secret' };
  return { ok: true };
}
