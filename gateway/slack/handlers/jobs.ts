import type { Interaction } from '../../../core/chatops';
import { consoleLink, escape, listed, plain } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

/** `jobs` (donbot's `tasks`): the most recent investigations, from Temporal visibility. */
export async function jobs(interaction: Extract<Interaction, { kind: 'jobs' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const { investigations } = await deps.temporal.list({ pageSize: interaction.limit });
  if (!investigations.length) {
    await conversation.answer(plain('No investigation yet. Try `analyze hxxps://evil[.]example/x`.'));
    return;
  }
  const lines = investigations.map((item) => {
    const verdict = item.verdict ? ` · *${item.verdict}*` : '';
    const when = item.startedAt ? ` · started ${item.startedAt.replace('T', ' ').slice(0, 19)}` : '';
    return `• <${consoleLink(deps.settings.links, item.id)}|${escape(item.id)}> — ${item.status}${verdict} · ${item.source ?? 'unknown source'}${when}`;
  });
  await conversation.answer(plain(`The last ${investigations.length} investigation(s):\n${listed(lines)}`));
}
