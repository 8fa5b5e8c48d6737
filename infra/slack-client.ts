import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebClient } from '@slack/web-api';
import type { TaskReport } from '../core/investigation';
import type { BlobStore } from './blob-store';

/*
 * What the gateway's Slack listeners and the main worker's Slack notifier share beyond the messages
 * themselves (slack-messages.ts): the Web API client, the seal on Docket's own messages, and the
 * slice of a task's output a message shows.
 */

/** Bytes of a task's output shown in Slack; the console shows the rest. */
const OUTPUT_BYTES = 2800;

/** A Slack Web API client that fails fast: the activity that calls it has its own retries and timeout. */
export function slackWebClient(botToken: string, apiUrl?: string): WebClient {
  return new WebClient(botToken, {
    slackApiUrl: apiUrl ? apiUrl.replace(/\/?$/, '/') : undefined,
    retryConfig: { retries: 1, minTimeout: 500, maxTimeout: 2000 },
    timeout: 10_000,
  });
}

/**
 * Binds the message Docket's Slack entry point posted for a request to the workflow it starts and
 * the channel it is in. The worker edits a message named in a workflow's input only when this seal
 * holds, so no caller can hand Docket a message (a verdict, an approval prompt of another
 * investigation) to rewrite. Keyed with the bot token, which the gateway and the worker both hold
 * and no caller does.
 */
export function sealSlackMessage(botToken: string, workflowId: string, channel: string, ts: string): string {
  return createHmac('sha256', botToken).update(JSON.stringify(['docket-slack-message', workflowId, channel, ts])).digest('base64url');
}

/** Whether `seal` is the seal sealSlackMessage gives that message. */
export function slackMessageSealHolds(botToken: string, workflowId: string, channel: string, ts: string, seal: string): boolean {
  const expected = Buffer.from(sealSlackMessage(botToken, workflowId, channel, ts));
  const given = Buffer.from(seal);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The start of what a task printed (its result blob), as text. */
export async function readTaskOutput(blobs: BlobStore, report: TaskReport): Promise<{ text: string; truncated: boolean } | undefined> {
  const result = report.report?.result;
  if (!result) return undefined;
  const bytes = await blobs.read(result.sha256, OUTPUT_BYTES + 1);
  return { text: bytes.subarray(0, OUTPUT_BYTES).toString('utf8'), truncated: bytes.length > OUTPUT_BYTES || Boolean(report.report?.truncated) };
}

/** Slack's error code (`not_in_channel`, `cant_update_message`, …) of a failed Web API call. */
export function slackError(error: unknown): string {
  return (error as { data?: { error?: string } }).data?.error ?? '';
}
