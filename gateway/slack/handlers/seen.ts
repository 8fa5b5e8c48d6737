import type { Interaction } from '../../../core/chatops';
import { indexValue } from '../../../core/observable-index';
import { defang } from '../../../core/observables';
import { consoleLink, escape, listed, plain, showObservable } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

/** Investigations one answer lists; the console link shows them all. */
export const SEEN_LIMIT = 10;

/**
 * `seen <value>`: the investigations that analyzed the value, given or found as an artifact, newest
 * first with their verdicts, from Temporal visibility (DocketObservables). The value is shown
 * defanged, so the answer never turns a malicious URL into a link.
 */
export async function seen(interaction: Extract<Interaction, { kind: 'seen' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const { investigations, nextPageToken } = await deps.temporal.list({ observable: interaction.value, pageSize: SEEN_LIMIT });
  const asked = showObservable(interaction.value.slice(0, 200));
  if (!investigations.length) {
    await conversation.answer(plain(`Not seen: no investigation Temporal still keeps analyzed ${asked}.`));
    return;
  }
  const lines = investigations.map((item) => {
    const verdict = item.verdict ? `*${item.verdict}*` : 'no verdict yet';
    const when = item.startedAt ? ` · ${item.startedAt.replace('T', ' ').slice(0, 16)}` : '';
    const what = item.what?.items.length ? ` · ${escape(item.what.items.map((entry) => defang(entry.label)).join(', '))}${item.what.more ? ` +${item.what.more}` : ''}` : '';
    return `• <${consoleLink(deps.settings.links, item.id)}|${escape(item.id)}> — ${verdict} · ${item.status}${when}${what}`;
  });
  const head = nextPageToken
    ? `Seen in more than ${investigations.length} investigations; the newest ${investigations.length}:`
    : `Seen in ${investigations.length} investigation(s), newest first:`;
  const all = nextPageToken ? `\n<${seenLink(deps.settings.links.console, interaction.value)}|All of them in the console>` : '';
  await conversation.answer(plain(`${asked} — ${head}\n${listed(lines)}${all}`));
}

/** The console's list searched for the value, in the form the index holds it (so the link stays short). */
function seenLink(console: string, value: string): string {
  return `${console.replace(/\/?$/, '/')}#/?observable=${encodeURIComponent(indexValue(value) ?? value)}`;
}
