import type { AllMiddlewareArgs, SlackEventMiddlewareArgs } from '@slack/bolt';
import { eventConversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { acceptRequest } from '../request';

/** `@Docket analyze …` in a channel, answered in the mention's thread. Bolt has acked the event. */
export function mentionListener(deps: SlackDeps) {
  return async ({ event, body, client, context }: SlackEventMiddlewareArgs<'app_mention'> & AllMiddlewareArgs): Promise<void> => {
    if (event.bot_id) return;
    const conversation = eventConversation(client, {
      channel: event.channel,
      user: event.user ?? '',
      ts: event.ts,
      threadTs: event.thread_ts,
      deliveryId: body.event_id,
      retry: context.retryNum,
      direct: false,
    });
    await acceptRequest(deps, conversation, event.text, event.files);
  };
}
