import type { Interaction } from '../../../core/chatops';
import { escape, listed, plain } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

/** `schedules`: the schedules Docket manages (schedules/*.yaml), paused or not, and when each runs next. */
export async function schedules(_interaction: Extract<Interaction, { kind: 'schedules' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const found = await deps.schedules.list();
  if (!found.length) {
    await conversation.answer(plain('Docket runs no schedule. They are defined in schedules/*.yaml.'));
    return;
  }
  const lines = found.map((schedule) => {
    const next = schedule.nextRuns[0];
    const when = schedule.paused ? `:double_vertical_bar: paused${schedule.note ? ` (${escape(schedule.note)})` : ''}` : next ? `next ${next.replace('T', ' ').slice(0, 16)} UTC` : 'no next run';
    const what = schedule.action === 'run' && schedule.engine ? `runs ${escape(schedule.engine)}` : schedule.action === 'investigate' ? 'investigates' : '';
    const description = schedule.description ? ` — ${escape(schedule.description)}` : '';
    return `• *${escape(schedule.id)}*${description}${what ? ` (${what})` : ''} · ${when}`;
  });
  await conversation.answer(plain(`Schedules:\n${listed(lines)}`));
}
