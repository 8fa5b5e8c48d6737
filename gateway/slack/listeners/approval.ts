import type { AllMiddlewareArgs, BlockButtonAction, SlackActionMiddlewareArgs } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import { RequestRefused } from '../../../contract/client';
import { APPROVE_ACTION, type ApprovalValue, deciderName, escape, progressMessage } from '../../../infra/slack-messages';
import type { SlackDeps } from '../deps';

/**
 * An Approve or Reject button on an investigation's message. Only the configured approvers may
 * press them; the decision goes to the workflow, whose next edit of the message names who decided.
 */
export function approvalListener(deps: SlackDeps) {
  return async ({ ack, body, action, client }: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs): Promise<void> => {
    await ack();
    const verdict = action.action_id === APPROVE_ACTION ? 'approve' : 'reject';
    const user = body.user;
    const channel = body.channel?.id ?? '';
    const whisper = (text: string) => client.chat.postEphemeral({ channel, user: user.id, thread_ts: body.message?.thread_ts, text }).catch(() => undefined);
    const value = approvalValue(action.value);
    if (!value) {
      deps.log.warn(`slack: a ${verdict} button from ${user.id} carried no investigation; ignored`);
      return;
    }
    if (!deps.settings.approvers.includes(user.id)) {
      deps.log.warn(`slack: ${user.id} (${user.username ?? user.name ?? 'unknown'}) pressed ${verdict} on ${value.id}/${value.response} but is not an approver (DOCKET_SLACK_APPROVERS); refused`);
      await whisper(deps.settings.approvers.length
        ? `Sorry <@${user.id}>, only approvers may ${verdict} responses. Ask one of ${deps.settings.approvers.map((id) => `<@${id}>`).join(', ')}.`
        : `Sorry <@${user.id}>, nobody may ${verdict} responses from Slack yet: an admin lists approvers' Slack ids in DOCKET_SLACK_APPROVERS.`);
      return;
    }
    const by = deciderName(user);
    try {
      await deps.temporal.decide(value.id, verdict, { responseId: value.response, by });
      deps.log.info(`slack: ${by} ${verdict}d response ${value.response} of ${value.id}`);
      await showDecision(deps, client, channel, body.message?.ts, value.id);
    } catch (error) {
      if (!(error instanceof RequestRefused)) throw error;
      deps.log.info(`slack: ${by} could not ${verdict} ${value.id}/${value.response}: ${error.message}`);
      await whisper(`I could not ${verdict} that: ${escape(error.message)}`);
    }
  };
}

/** The button's value as Docket wrote it, or undefined for anything else. */
function approvalValue(raw: string | undefined): ApprovalValue | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw ?? '');
  } catch {
    return undefined;
  }
  const { id, response } = (value ?? {}) as Partial<Record<keyof ApprovalValue, unknown>>;
  return typeof id === 'string' && typeof response === 'string' ? { id, response } : undefined;
}

/**
 * Redraws the message at once with the decision and without its buttons, so nobody presses them
 * again; the workflow's own edits follow as the responder runs.
 */
async function showDecision(deps: SlackDeps, client: WebClient, channel: string, ts: string | undefined, id: string): Promise<void> {
  if (!channel || !ts) return;
  try {
    const { live } = await deps.temporal.status(id);
    if (!live) return;
    const message = progressMessage(live, deps.settings.links);
    await client.chat.update({ channel, ts, text: message.text, blocks: message.blocks });
  } catch (error) {
    deps.log.debug(`slack: the decision on ${id} is not drawn yet (${(error as Error).message}); the workflow's next edit shows it`);
  }
}
