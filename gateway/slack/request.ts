import { parseInteraction } from '../../core/chatops';
import type { Conversation } from './conversation';
import type { SlackDeps } from './deps';
import { dispatch, guarded } from './dispatch';
import { analyzeFiles } from './handlers/files';

/**
 * Queues the request's work behind the ack (see WorkQueue); when too much is waiting, says so.
 */
export async function acceptRequest(deps: SlackDeps, conversation: Conversation, text: string, files: Array<{ id: string }> = []): Promise<void> {
  if (deps.work.push(() => handleRequest(deps, conversation, text, files))) return;
  deps.log.warn(`slack: ${deps.work.size} requests are waiting; turned ${conversation.origin} ${conversation.deliveryId} from ${conversation.user} away`);
  await conversation.whisper('Sorry, I am very busy right now: ask me again in a minute.').catch(() => undefined);
}

/**
 * What a mention, a direct message and the slash command share once acked: the channel and user
 * restrictions, then files to analyze or the interaction the text asks for.
 */
export async function handleRequest(deps: SlackDeps, conversation: Conversation, text: string, files: Array<{ id: string }> = []): Promise<void> {
  if (conversation.retry) deps.log.info(`slack: Slack delivered ${conversation.origin} ${conversation.deliveryId} again (retry ${conversation.retry})`);
  const access = await deps.access.allows(conversation.client, conversation.channel, conversation.user);
  if (!access.ok) {
    deps.log.warn(`slack: refused ${conversation.origin} ${conversation.deliveryId} from ${conversation.user} in ${conversation.channel}: ${access.reason}`);
    await conversation.whisper(deps.access.refusal(conversation.user)).catch(() => undefined);
    return;
  }
  if (files.length) {
    await guarded(conversation, deps, 'file analysis', () => analyzeFiles(files, text, conversation, deps));
    return;
  }
  await dispatch(parseInteraction(text), conversation, deps);
}
