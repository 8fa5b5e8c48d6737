import type { Interaction } from '../../../core/chatops';
import type { InvestigationReport, TaskReport } from '../../../core/investigation';
import { RequestRefused } from '../../../contract/client';
import { readTaskOutput } from '../../../infra/slack-client';
import { escape, plain, progressMessage, summaryMessage, taskMessage } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

/** `status <id>`: the live state of an investigation, or the result of an investigation or task. */
export async function status(interaction: Extract<Interaction, { kind: 'status' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const { links } = deps.settings;
  let found;
  try {
    found = await deps.temporal.status(interaction.id);
  } catch (error) {
    if (!(error instanceof RequestRefused) || error.statusCode !== 404) throw error;
    await conversation.whisper(`I know no investigation or task \`${escape(interaction.id)}\`; \`jobs\` lists the recent ones.`);
    return;
  }
  const { view, live } = found;
  if (view.state === 'completed') {
    // A `task` workflow's result reads as a report too; its engine field tells them apart.
    const report = view.report as InvestigationReport | TaskReport;
    await conversation.answer('engine' in report ? taskMessage(report, await readTaskOutput(deps.blobs, report), links) : summaryMessage(report, links));
  } else if (view.state === 'failed') {
    await conversation.answer(plain(`:x: \`${escape(interaction.id)}\`: ${escape(view.message)}`));
  } else if (live) {
    await conversation.answer(progressMessage(live, links));
  } else {
    await conversation.answer(plain(`:hourglass_flowing_sand: \`${escape(interaction.id)}\` is ${view.phase}, ${view.finishedJobs} engine job(s) done.`));
  }
}
