import { WebClient } from '@slack/web-api';
import type { InvestigationReport, InvestigationStatus, TaskReport } from '../core/investigation';
import { type Links, type SlackMessage, progressMessage, summaryMessage, taskMessage } from '../gateway/slack/blocks';
import type { BlobStore } from './blob-store';
import type { InvestigationActivityDeps, NotificationTarget } from './investigation-activities';
import type { Logger } from './log';

export interface SlackNotifierOptions {
  botToken: string;
  /** Bolt's `slackApiUrl`: a proxy, or a fake Slack in tests; Slack's own API when unset. */
  apiUrl?: string;
  blobs: BlobStore;
  links: Links;
  log: Logger;
}

/** Bytes of a task's output shown in Slack; the console shows the rest. */
const OUTPUT_BYTES = 2800;

/** Slack's answers for a message the bot may not edit: it was not the bot's, or it is gone. */
const NOT_EDITABLE = new Set(['cant_update_message', 'message_not_found', 'edit_window_closed']);

/** A Slack Web API client that fails fast: the activity that calls it has its own retries and timeout. */
export function slackWebClient(botToken: string, apiUrl?: string): WebClient {
  return new WebClient(botToken, {
    slackApiUrl: apiUrl ? apiUrl.replace(/\/?$/, '/') : undefined,
    retryConfig: { retries: 1, minTimeout: 500, maxTimeout: 2000 },
    timeout: 10_000,
  });
}

/**
 * The main worker's Slack notifier: it edits the one message the gateway posted for an investigation
 * (`notify.slack.thread` is that message's ts) as engine jobs change state, and turns it into the
 * summary at the end.
 */
export function createSlackNotifier(options: SlackNotifierOptions): Required<Pick<InvestigationActivityDeps, 'slack' | 'slackProgress'>> {
  const client = slackWebClient(options.botToken, options.apiUrl);

  const edit = async (target: NotificationTarget, message: SlackMessage) => {
    await client.chat.update({ channel: target.channel!, ts: target.thread!, text: message.text, blocks: message.blocks });
  };

  return {
    async slackProgress(target, status: InvestigationStatus) {
      // Without a message of its own there is nothing to edit, and a new message per change would flood the channel.
      if (!target.channel || !target.thread) return;
      try {
        await edit(target, progressMessage(status, options.links));
      } catch (error) {
        if (!NOT_EDITABLE.has(slackError(error))) throw error;
        options.log.debug(`slack: cannot edit ${target.channel}/${target.thread} (${slackError(error)}); progress is not shown there`);
      }
    },

    async slack(target, report: InvestigationReport | TaskReport) {
      if (!target.channel) throw new Error('the Slack target names no channel');
      const message = 'engine' in report ? taskMessage(report, await readTaskOutput(options.blobs, report), options.links) : summaryMessage(report, options.links);
      if (target.thread) {
        try {
          await edit(target, message);
          return;
        } catch (error) {
          if (!NOT_EDITABLE.has(slackError(error))) throw error;
        }
      }
      // A thread someone else started (an API caller's `notify.slack`): answer in it instead.
      await client.chat.postMessage({ channel: target.channel, thread_ts: target.thread, text: message.text, blocks: message.blocks });
    },
  };
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
