import { patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { InvestigationActivities, NotificationTarget } from '../activities/investigation-activities';
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
  const remediation = new Remediation(input);
  await remediation.prepare();
  // Registered where the recorded histories had them: after the first activities.
  handleApprovals(remediation.responses);
  setHandler(statusQuery, () => remediation.status());
  return remediation.run();
}

/** The state of one finding's remediation: its bots' results, their approvals and notifications. */
class Remediation {
  readonly responses: ResponseRecord[] = [];
  private readonly id: string;
  private readonly runId: string;
  private readonly startedAt = new Date().toISOString();
  private readonly entity: ComplianceReport['entity'];
  private targets: NotificationTarget[] = [];
  private policy: Policy | undefined;
  /** True while a bot waits for a person, which status reports as the responding phase. */
  private waiting = false;
  private readonly bots: BotResult[] = [];
  private readonly notified: NotificationRecord[] = [];

  constructor(private readonly input: ComplianceInput) {
    ({ workflowId: this.id, runId: this.runId } = workflowInfo());
    const { entity } = input.finding;
    this.entity = { id: entity.id, name: entity.name, type: entity.type };
  }

  /** Where to report and, for executions that have the patch, which bots must wait for approval. */
  async prepare(): Promise<void> {
    // The installation's own targets (DOCKET_WEBHOOK_URL), as CloudBots reported to one SNS topic.
    this.targets = await activities.notificationTargets({});
    this.policy = patched(BOT_APPROVALS_PATCH) ? await activities.loadPolicy() : undefined;
  }

  async run(): Promise<ComplianceReport> {
    for (const [index, action] of this.input.actions.entries()) await this.remediate(action, index);
    return this.report();
  }

  status(): InvestigationStatus {
    return {
      id: this.id, phase: this.waiting ? 'responding' : 'analyzing', jobs: [], verdicts: { bySubject: {}, overall: 'info' }, responses: this.responses,
    };
  }

  /** One bot: its approval when the policy asks for one, its run, and its outcome sent to every target. */
  private async remediate(action: RemediationAction, index: number): Promise<void> {
    // Its own job id (container labels, webhook message id): the same bot may appear twice in one rule.
    const job = botJobId(this.id, index, action.bot);
    const startedAt = new Date().toISOString();
    this.waiting = true;
    const refusal = this.policy ? await this.approval(this.policy, action, index) : undefined;
    this.waiting = false;
    const result = refusal ?? await this.runBot(job, action);
    this.bots.push(result);
    await notifyAll(this.targets, () => this.notification(job, action, result, startedAt), this.notified);
  }

  /**
   * An AUTO: tag is the operator's standing order, so a bot runs at once unless a policy rule names
   * it with `approval: required`; then it waits for a person (POST /v1/investigations/<finding
   * key>/approve) until the rule's expiry. Answers the bot's result when it must not run.
   */
  private async approval(policy: Policy, action: RemediationAction, index: number): Promise<BotResult | undefined> {
    const gate = approvalFor(policy, action.bot, 'none');
    if (gate.approval === 'none' || !action.known) return undefined;
    const record: ResponseRecord = {
      id: `r${index + 1}`,
      responder: action.bot,
      observable: { type: 'other', data: this.input.finding.entity.id },
      rule: gate.rules.join(', '),
      approval: { state: 'pending', expiresAt: new Date(Date.now() + gate.expiryMs).toISOString() },
    };
    this.responses.push(record);
    if (await approved(record, gate.expiryMs)) return undefined;
    const { state, by, reason } = record.approval;
    const why = state === 'expired' ? `nobody approved it within ${Math.round(gate.expiryMs / 60_000)} min` : `${by ?? 'someone'} rejected it${reason ? ` (${reason})` : ''}`;
    return { bot: action.bot, params: action.params, outcome: 'failed', message: `not run: the policy (${record.rule}) requires approval and ${why}` };
  }

  private async runBot(job: string, action: RemediationAction): Promise<BotResult> {
    const { bot, params } = action;
    // Asked of the worker rather than trusted from the gateway: the engines may have been reloaded since.
    const settings = await activities.responderSettings(bot);
    if (!settings) {
      return { bot, params, outcome: 'failed', message: `unknown bot ${bot}: no responder engine of that name is declared, so nothing was done` };
    }
    const { input } = this;
    const { finding } = input;
    const subject = { kind: 'observable' as const, observable: { type: 'other' as const, data: finding.entity.id } };
    const report = await runEngineJob(job, this.runId, { ...settings, subject }, {
      tlp: 2,
      pap: 2,
      env: input.env,
      force: true,
      // CloudBots' bot signature was (rule, entity, params) plus the account's session and region.
      parameters: {
        bot, params, rule: finding.rule, entity: finding.entity, account_id: input.accountId, region: input.region, finding_key: this.id, finding,
      },
    }, settings.queuePrefix, job);
    if (report.status === 'success') return { bot, params, outcome: 'passed', message: botMessage(report), report };
    return { bot, params, outcome: 'failed', message: report.errorMessage ?? report.summary, report };
  }

  private notification(job: string, action: RemediationAction, result: BotResult, startedAt: string): BotNotification {
    const { finding } = this.input;
    return {
      id: job,
      engine: action.bot,
      status: result.outcome === 'passed' ? 'Success' : 'Fail',
      source: 'event',
      startedAt,
      finishedAt: result.report?.finishedAt ?? new Date().toISOString(),
      report: result.report,
      notifications: [],
      errors: result.outcome === 'passed' ? [] : [result.message],
      compliance: {
        workflowId: this.id, rule: finding.rule.name, ruleId: finding.rule.ruleId, severity: finding.rule.severity, entity: this.entity,
        accountId: this.input.accountId, region: this.input.region, bot: action.bot, params: action.params, outcome: result.outcome, message: result.message,
      },
    };
  }

  private report(): ComplianceReport {
    const { input } = this;
    return {
      id: this.id,
      status: this.bots.every((bot) => bot.outcome === 'passed') ? 'Success' : 'Fail',
      source: 'event',
      accountId: input.accountId,
      region: input.region,
      rule: input.finding.rule.name,
      entity: this.entity,
      reportTime: input.finding.reportTime,
      startedAt: this.startedAt,
      finishedAt: new Date().toISOString(),
      bots: this.bots,
      responses: this.responses.length ? this.responses : undefined,
      notifications: this.notified,
    };
  }
}

/** The bot's own words: its CloudBots taxonomy when it wrote one, else the start of its output. */
function botMessage(report: EngineReport): string {
  const taxonomy = report.taxonomies.find((item) => item.namespace === BOT_TAXONOMY && item.predicate === report.engine);
  return taxonomy?.value ?? report.summary;
}
