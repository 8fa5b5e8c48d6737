import type { RespondFn } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import { slackError } from '../../infra/slack-client';
import type { SlackMessage } from '../../infra/slack-messages';

/**
 * Where a request came from and how to answer it, whatever Slack delivered it as: a mention, a
 * direct message, or the slash command.
 */
export interface Conversation {
  origin: 'mention' | 'direct' | 'command';
  channel: string;
  user: string;
  /** The thread answers go to; none for slash commands and top-level direct messages. */
  thread?: string;
  /** Slack's id of this request, the same on each retry: the event id, or the command's trigger id. */
  deliveryId: string;
  /** Set when Slack delivers this request again. */
  retry?: number;
  client: WebClient;
  /** A quick answer: in the thread, or to the asker alone for a slash command. */
  answer(message: SlackMessage): Promise<void>;
  /** A few words to the asker alone (refusals, mistakes). */
  whisper(text: string): Promise<void>;
  /** Posts the message that an investigation then edits, and answers its ts. */
  announce(message: SlackMessage): Promise<string>;
  /** Removes a message this request announced (a duplicate, when a retry raced the first delivery). */
  withdraw(ts: string): Promise<void>;
}

/** A request Slack refused to carry out for the bot, in words for the asker. */
export class SlackRefusal extends Error {}

interface EventSource {
  channel: string;
  user: string;
  ts: string;
  threadTs?: string;
  deliveryId: string;
  retry?: number;
  direct: boolean;
}

export function eventConversation(client: WebClient, source: EventSource): Conversation {
  // A mention is answered in its thread; a direct message beside it, unless it was itself in a thread.
  const thread = source.direct ? source.threadTs : source.threadTs ?? source.ts;
  const post = async (message: SlackMessage) => {
    const posted = await client.chat.postMessage({ channel: source.channel, thread_ts: thread, text: message.text, blocks: message.blocks });
    return posted.ts ?? '';
  };
  return {
    origin: source.direct ? 'direct' : 'mention',
    channel: source.channel,
    user: source.user,
    thread,
    deliveryId: source.deliveryId,
    retry: source.retry,
    client,
    answer: async (message) => { await post(message); },
    whisper: async (text) => {
      await client.chat.postEphemeral({ channel: source.channel, user: source.user, thread_ts: thread, text });
    },
    announce: post,
    withdraw: async (ts) => { await client.chat.delete({ channel: source.channel, ts }); },
  };
}

interface CommandSource {
  channel: string;
  user: string;
  triggerId: string;
  respond: RespondFn;
}

export function commandConversation(client: WebClient, source: CommandSource): Conversation {
  return {
    origin: 'command',
    channel: source.channel,
    user: source.user,
    deliveryId: source.triggerId,
    client,
    answer: async (message) => { await source.respond({ response_type: 'ephemeral', text: message.text, blocks: message.blocks }); },
    whisper: async (text) => { await source.respond({ response_type: 'ephemeral', text }); },
    announce: async (message) => {
      try {
        const posted = await client.chat.postMessage({ channel: source.channel, text: message.text, blocks: message.blocks });
        return posted.ts ?? '';
      } catch (error) {
        if (['not_in_channel', 'channel_not_found'].includes(slackError(error))) {
          throw new SlackRefusal('I cannot post in this channel, so I cannot show the progress here: invite me (`/invite @Docket`), or ask me in a direct message.');
        }
        throw error;
      }
    },
    withdraw: async (ts) => { await client.chat.delete({ channel: source.channel, ts }); },
  };
}
