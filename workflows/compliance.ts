import { patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { InvestigationActivities } from '../activities/investigation-activities';
import { botJobId, statusQuery } from '../contract/messages';
import type { BotNotification, BotResult, ComplianceInput, ComplianceReport, RemediationAction } from '../core/compliance';
import type { EngineReport, InvestigationStatus, NotificationRecord, ResponseRecord } from '../core/investigation';
import { approvalFor, type Policy } from '../core/policy';
import { approved, handleApprovals } from './approvals';
import { runEngineJob } from './engine-job';
import { notifyAll } from './notify';

const activities = proxyActivities<InvestigationActivities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } });

/** The namespace a bot's Cortex taxonomy carries its message under (the bots under engines/ write it). */
const BOT_TAXONOMY = 'CloudBots';
/**
 * Executions started before bots could wait for approval read no policy; this marks the ones that
 * do, so the histories recorded before replay unchanged.
 */
const BOT_APPROVALS_PATCH = 'compliance-bot-approvals';

/**
 * Remediates one Dome9 / CloudGuard finding as CloudBots did: each `AUTO:` bot in turn (a later one
 * may rely on an earlier one, as tagging a stopped instance does), each a responder engine run with
 * the finding and the account's credentials, and each bot's outcome sent to the notification
 * targets. A bot that is unknown or fails is reported and the next one still runs.
 */
export async function compliance(input: ComplianceInput): Promise<ComplianceReport> {
  const { workflowId: id, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const { finding } = input;
  const entity = { id: finding.entity.id, name: finding.entity.name, type: finding.entity.type };
  // The installation's own targets (DOCKET_WEBHOOK_URL), as CloudBots reported to one SNS topic.
  const targets = await activities.notificationTargets({});
  const policy = patched(BOT_APPROVALS_PATCH) ? await activities.loadPolicy() : undefined;
  const responses: ResponseRecord[] = [];
  let waiting = false;
  handleApprovals(responses);
  setHandler(statusQuery, (): InvestigationStatus => ({
    id, phase: waiting ? 'responding' : 'analyzing', jobs: [], verdicts: { bySubject: {}, overall: 'info' }, responses,
  }));
  const bots: BotResult[] = [];
  const notified: NotificationRecord[] = [];
  for (const [index, action] of input.actions.entries()) {
    // Its own job id (container labels, webhook message id): the same bot may appear twice in one rule.
    const job = botJobId(id, index, action.bot);
    const botStartedAt = new Date().toISOString();
    waiting = true;
    const refusal = policy ? await approval(policy, action, index, input, responses) : undefined;
    waiting = false;
    const result = refusal ?? await runBot(job, runId, action, input);
    bots.push(result);
    const notification = (): BotNotification => ({
      id: job,
      engine: action.bot,
      status: result.outcome === 'passed' ? 'Success' : 'Fail',
      source: 'event',
      startedAt: botStartedAt,
      finishedAt: result.report?.finishedAt ?? new Date().toISOString(),
      report: result.report,
      notifications: [],
      errors: result.outcome === 'passed' ? [] : [result.message],
      compliance: {
        workflowId: id, rule: finding.rule.name, ruleId: finding.rule.ruleId, severity: finding.rule.severity, entity,
        accountId: input.accountId, region: input.region, bot: action.bot, params: action.params, outcome: result.outcome, message: result.message,
      },
    });
    await notifyAll(targets, notification, notified);
  }
  return {
    id,
    status: bots.every((bot) => bot.outcome === 'passed') ? 'Success' : 'Fail',
    source: 'event',
    accountId: input.accountId,
    region: input.region,
    rule: finding.rule.name,
    entity,
    reportTime: finding.reportTime,
    startedAt,
    finishedAt: new Date().toISOString(),
    bots,
    responses: responses.length ? responses : undefined,
    notifications: notified,
  };
}

/**
 * An AUTO: tag is the operator's standing order, so a bot runs at once unless a policy rule names
 * it with `approval: required`; then it waits for a person (POST /v1/investigations/<finding
 * key>/approve) until the rule's expiry. Answers the bot's result when it must not run.
 */
async function approval(policy: Policy, action: RemediationAction, index: number, input: ComplianceInput, responses: ResponseRecord[]): Promise<BotResult | undefined> {
  const gate = approvalFor(policy, action.bot, 'none');
  if (gate.approval === 'none' || !action.known) return undefined;
  const record: ResponseRecord = {
    id: `r${index + 1}`,
    responder: action.bot,
    observable: { type: 'other', data: input.finding.entity.id },
    rule: gate.rules.join(', '),
    approval: { state: 'pending', expiresAt: new Date(Date.now() + gate.expiryMs).toISOString() },
  };
  responses.push(record);
  if (await approved(record, gate.expiryMs)) return undefined;
  const { state, by, reason } = record.approval;
  const why = state === 'expired' ? `nobody approved it within ${Math.round(gate.expiryMs / 60_000)} min` : `${by ?? 'someone'} rejected it${reason ? ` (${reason})` : ''}`;
  return { bot: action.bot, params: action.params, outcome: 'failed', message: `not run: the policy (${record.rule}) requires approval and ${why}` };
}

async function runBot(job: string, runId: string, action: RemediationAction, input: ComplianceInput): Promise<BotResult> {
  const { bot, params } = action;
  // Asked of the worker rather than trusted from the gateway: the engines may have been reloaded since.
  const settings = await activities.responderSettings(bot);
  if (!settings) {
    return { bot, params, outcome: 'failed', message: `unknown bot ${bot}: no responder engine of that name is declared, so nothing was done` };
  }
  const { finding } = input;
  const subject = { kind: 'observable' as const, observable: { type: 'other' as const, data: finding.entity.id } };
  const report = await runEngineJob(job, runId, { ...settings, subject }, {
    tlp: 2,
    pap: 2,
    env: input.env,
    force: true,
    // CloudBots' bot signature was (rule, entity, params) plus the account's session and region.
    parameters: {
      bot, params, rule: finding.rule, entity: finding.entity, account_id: input.accountId, region: input.region, finding_key: workflowInfo().workflowId, finding,
    },
  }, settings.queuePrefix, job);
  if (report.status === 'success') return { bot, params, outcome: 'passed', message: botMessage(report), report };
  return { bot, params, outcome: 'failed', message: report.errorMessage ?? report.summary, report };
}

/** The bot's own words: its CloudBots taxonomy when it wrote one, else the start of its output. */
function botMessage(report: EngineReport): string {
  const taxonomy = report.taxonomies.find((item) => item.namespace === BOT_TAXONOMY && item.predicate === report.engine);
  return taxonomy?.value ?? report.summary;
}
