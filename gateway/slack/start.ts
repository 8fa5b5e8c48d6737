import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { z } from 'zod';
import { sealSlackMessage } from '../../infra/slack-client';
import { slackWorkflowId, WorkflowType } from '../../contract/messages';
import { InvestigationInput, TaskInput } from '../../core/investigation';
import { type SlackMessage, plain } from '../../infra/slack-messages';
import type { Conversation } from './conversation';
import type { SlackDeps } from './deps';

export type SlackWork =
  | { workflow: typeof WorkflowType.investigation; input: Omit<z.input<typeof InvestigationInput>, 'notify' | 'source' | 'requester'> }
  | { workflow: typeof WorkflowType.task; input: Omit<z.input<typeof TaskInput>, 'notify' | 'source' | 'requester'> };

/** The workflow a Slack request starts: named by Slack's own id of the request, so a retry finds it. */
export function workflowIdFor(conversation: Conversation): string {
  return slackWorkflowId(conversation.deliveryId);
}

/**
 * Starts the work a Slack request asked for, once. Slack delivers a request again when it did not
 * hear back in time, or when the gateway failed; the workflow id is Slack's id of the request and
 * Temporal refuses a second workflow with that id, even after the first one closed, so no retry
 * ever starts a second investigation, across gateway restarts and replicas alike.
 *
 * `prepare` runs only for a request not seen before (a file download, say) and gives the work, or
 * undefined when it has told the asker why there is none.
 */
export async function startOnce(
  deps: SlackDeps,
  conversation: Conversation,
  announcement: SlackMessage,
  prepare: () => Promise<SlackWork | undefined>,
): Promise<string | undefined> {
  const workflowId = workflowIdFor(conversation);
  // Only a retry can find its workflow already there; Temporal's refusal below is the guarantee, this
  // check just spares a retry the download and the message it would then withdraw.
  if (conversation.retry && await deps.temporal.exists(workflowId)) {
    deps.log.info(`slack: ${describeDelivery(conversation)} was handled already (workflow ${workflowId}); not started again`);
    return undefined;
  }
  const work = await prepare();
  if (!work) return undefined;
  const ts = await conversation.announce(announcement);
  // The announcement is the one message the workflow edits; the seal tells the worker it is Docket's, for this workflow.
  const notify = {
    slack: { channel: conversation.channel, thread: conversation.thread, message: ts, seal: sealSlackMessage(deps.settings.botToken, workflowId, conversation.channel, ts) },
  };
  const requester = `Slack ${conversation.user}`;
  try {
    if (work.workflow === WorkflowType.investigation) {
      const input = InvestigationInput.parse({ ...work.input, source: 'slack', requester, notify });
      await deps.temporal.startInvestigation(input, workflowId, { once: true });
    } else {
      const input = TaskInput.parse({ ...work.input, source: 'slack', requester, notify });
      await deps.temporal.startTask(input, workflowId, { once: true });
    }
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      deps.log.info(`slack: ${describeDelivery(conversation)} raced an earlier delivery of itself; workflow ${workflowId} runs once`);
      await conversation.withdraw(ts).catch(() => undefined);
      return undefined;
    }
    await edit(conversation, ts, plain(`:x: I could not start this: ${(error as Error).message.split('\n')[0]}. Try again in a minute.`));
    throw error;
  }
  deps.log.info(`slack: ${conversation.user} started ${work.workflow} ${workflowId} from ${conversation.origin} in ${conversation.channel}`);
  return workflowId;
}

async function edit(conversation: Conversation, ts: string, message: SlackMessage): Promise<void> {
  await conversation.client.chat.update({ channel: conversation.channel, ts, text: message.text, blocks: message.blocks }).catch(() => undefined);
}

export function describeDelivery(conversation: Conversation): string {
  return `${conversation.origin} ${conversation.deliveryId}${conversation.retry ? ` (Slack's retry ${conversation.retry})` : ''}`;
}
