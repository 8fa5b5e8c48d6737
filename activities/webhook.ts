import { createHmac } from 'node:crypto';

/**
 * Signs a webhook body the Standard Webhooks way: `webhook-id`, `webhook-timestamp` (seconds) and
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. A `whsec_` secret is base64.
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${signature}`;
}

export interface WebhookDelivery {
  url: string;
  secret?: string;
  /** Stays the same across retries, so the receiver can drop duplicates. */
  id: string;
  body: unknown;
  timeoutMs?: number;
}

export async function deliverWebhook(delivery: WebhookDelivery): Promise<number> {
  const body = JSON.stringify(delivery.body);
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'docket-webhook/1',
    'webhook-id': delivery.id,
    'webhook-timestamp': String(timestamp),
  };
  if (delivery.secret) headers['webhook-signature'] = signWebhook(delivery.secret, delivery.id, timestamp, body);
  const response = await fetch(delivery.url, {
    method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(delivery.timeoutMs ?? 10_000),
  });
  await response.arrayBuffer().catch(() => undefined);
  if (response.status < 200 || response.status >= 300) {
    throw new Error(`webhook ${new URL(delivery.url).origin} answered ${response.status}`);
  }
  return response.status;
}
