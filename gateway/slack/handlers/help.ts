import { helpText, type Interaction } from '../../../core/chatops';
import { plain } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

export const SLASH_COMMAND = '/docket';

/** `help`, and the short help for anything the lexicon does not know. */
export async function help(interaction: Extract<Interaction, { kind: 'help' }>, conversation: Conversation, _deps: SlackDeps): Promise<void> {
  const prefix = conversation.origin === 'command' ? SLASH_COMMAND : conversation.origin === 'mention' ? '@Docket' : '';
  await conversation.answer(plain(helpText(interaction, prefix)));
}
