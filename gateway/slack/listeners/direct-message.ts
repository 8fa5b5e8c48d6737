import type { AllMiddlewareArgs, SlackEventMiddlewareArgs } from '@slack/bolt';
import { eventConversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { acceptRequest } from '../request';

/**
 * A direct message to the bot, with or without files. Messages in channels come as mentions
 * instead; edits, joins and other bots' messages are not requests.
 */
export function directMessageListener(deps: SlackDeps) {
  return async ({ message, body, client, context }: SlackEventMiddlewareArgs<'message'> & AllMiddlewareArgs): Promise<void> => {
    if (message.channel_type !== 'im') return;
    if (message.subtype !== undefined && message.subtype !== 'file_share') return;
    if ('bot_id' in message && message.bot_id) return;
    const conversation = eventConversation(client, {
      channel: message.channel,
      user: message.user,
      ts: message.ts,
      threadTs: message.thread_ts,
      deliveryId: body.event_id,
      retry: context.retryNum,
      direct: true,
    });
    await acceptRequest(deps, conversation, message.text ?? '', message.files);
  };
}
