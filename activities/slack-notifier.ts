import type { InvestigationReport, InvestigationStatus, TaskReport } from '../core/investigation';
import { checkUnsealedSlackChannel } from '../core/notify-targets';
import { type Links, type SlackMessage, progressMessage, summaryMessage, taskMessage } from '../infra/slack-messages';
import type { BlobStore } from '../infra/blob-store';
import { readTaskOutput, slackError, slackMessageSealHolds, slackWebClient } from '../infra/slack-client';
import type { InvestigationActivityDeps, NotificationTarget } from './investigation-activities';
import type { Logger } from '../infra/log';

export interface SlackNotifierOptions {
  botToken: string;
  /** Bolt's `slackApiUrl`: a proxy, or a fake Slack in tests; Slack's own API when unset. */
  apiUrl?: string;
  blobs: BlobStore;
  links: Links;
  log: Logger;
  /** DOCKET_SLACK_CHANNELS: the only channels a request made outside Slack may have Docket post to. */
  channels: readonly string[];
}

/** Slack's answers for a message the bot may not edit: it was not the bot's, or it is gone. */
const NOT_EDITABLE = new Set(['cant_update_message', 'message_not_found', 'edit_window_closed']);

/**
 * The main worker's Slack side. Docket edits only its own message for an investigation: the one its
 * Slack entry point posted for the request (sealed), or the one the first progress update posts in
 * the channel or thread a request named. It never edits a message whose ts came from a caller.
 */
export function createSlackNotifier(options: SlackNotifierOptions): Required<Pick<InvestigationActivityDeps, 'slack' | 'slackProgress' | 'slackTarget'>> {
  const client = slackWebClient(options.botToken, options.apiUrl);

  const edit = async (channel: string, ts: string, message: SlackMessage) => {
    await client.chat.update({ channel, ts, text: message.text, blocks: message.blocks });
  };
  const post = async (target: NotificationTarget, message: SlackMessage): Promise<string | undefined> => {
    const posted = await client.chat.postMessage({ channel: target.channel!, thread_ts: target.thread, text: message.text, blocks: message.blocks });
    return posted.ts;
  };

  return {
    slackTarget(workflowId, requested, source) {
      const base = { name: `slack ${requested.channel}`, kind: 'slack' as const, channel: requested.channel };
      if (requested.message !== undefined || requested.seal !== undefined) {
        const { message, seal } = requested;
        if (!message || !seal || !slackMessageSealHolds(options.botToken, workflowId, requested.channel, message, seal)) {
          return { ...base, refused: `the Slack message ${message ?? '(none)'} in ${requested.channel} was not posted by Docket for ${workflowId}, so Docket neither edits it nor posts there` };
        }
        return { ...base, thread: requested.thread, message };
      }
      const allowed = checkUnsealedSlackChannel(requested.channel, source, options.channels);
      if (!allowed.ok) return { ...base, refused: allowed.reason };
      return { ...base, thread: requested.thread };
    },

    async slackProgress(target, status: InvestigationStatus) {
      if (target.refused || !target.channel) return undefined;
      const message = progressMessage(status, options.links);
      // One message of its own, posted once and edited after: a new message per change would flood the channel.
      if (!target.message) return post(target, message);
      try {
        await edit(target.channel, target.message, message);
      } catch (error) {
        if (!NOT_EDITABLE.has(slackError(error))) throw error;
        options.log.debug(`slack: cannot edit ${target.channel}/${target.message} (${slackError(error)}); progress is not shown there`);
      }
      return undefined;
    },

    async slack(target, report: InvestigationReport | TaskReport) {
      if (target.refused) throw new Error(target.refused);
      if (!target.channel) throw new Error('the Slack target names no channel');
      const message = 'engine' in report ? taskMessage(report, await readTaskOutput(options.blobs, report), options.links) : summaryMessage(report, options.links);
      if (target.message) {
        try {
          await edit(target.channel, target.message, message);
          return;
        } catch (error) {
          if (!NOT_EDITABLE.has(slackError(error))) throw error;
        }
      }
      // No message of its own yet (no progress was shown), or it is gone: the report gets a new one.
      await post(target, message);
    },
  };
}
