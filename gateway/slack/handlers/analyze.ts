import type { Interaction } from '../../../core/chatops';
import { extractObservables } from '../../../core/observables';
import { showObservable, startingMessage } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { startOnce } from '../start';

/** `analyze <text>`: an investigation of every observable in the text, shown live in one message. */
export async function analyze(interaction: Extract<Interaction, { kind: 'analyze' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const found = extractObservables(interaction.text);
  if (!found.length) {
    await conversation.whisper('I found nothing to analyze in that: give me URLs, domains, IPs, hashes, mail addresses or CVEs (defanged is fine, like hxxps://evil[.]example).');
    return;
  }
  const what = found.length === 1 ? `${found[0].type} ${showObservable(found[0].data)}` : `${found.length} observables`;
  await startOnce(deps, conversation, startingMessage(`:mag: Investigating ${what} for <@${conversation.user}>…`), async () => ({
    workflow: 'investigation',
    input: { text: interaction.text },
  }));
}
