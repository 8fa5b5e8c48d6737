import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from '@slack/bolt';
import { commandConversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { acceptRequest } from '../request';

/** `/docket <text>`: acked at once (Slack allows 3 s), answered to the asker, investigations posted in the channel. */
export function commandListener(deps: SlackDeps) {
  return async ({ command, ack, respond, client }: SlackCommandMiddlewareArgs & AllMiddlewareArgs): Promise<void> => {
    await ack();
    const conversation = commandConversation(client, {
      channel: command.channel_id,
      user: command.user_id,
      triggerId: command.trigger_id,
      respond,
    });
    await acceptRequest(deps, conversation, command.text ?? '');
  };
}
