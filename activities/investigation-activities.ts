import { readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { parse as parseYaml } from 'yaml';
import type { BlobRef, InvestigationInput, InvestigationReport, InvestigationStatus, Source, Subject, TaskReport } from '../core/investigation';
import { checkWebhook } from '../core/notify-targets';
import { type Plan, planJobs } from '../core/plan';
import { type Policy, type RequestedResponder, validatePolicy } from '../core/policy';
import type { BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import type { Logger } from '../infra/log';
import { deliverWebhook } from './webhook';

export interface NotificationTarget {
  name: string;
  kind: 'webhook' | 'slack';
  url?: string;
  channel?: string;
  /** The Slack thread Docket answers in (its parent's ts). */
  thread?: string;
  /** Docket's own Slack message for this investigation, which progress and the summary edit. */
  message?: string;
  /** Why nothing is sent to this target; the report records it as a failed notification. */
  refused?: string;
}

export type SlackRequest = NonNullable<NonNullable<InvestigationInput['notify']>['slack']>;

export interface InvestigationActivityDeps {
  registry: EngineRegistry;
  /** Where reports too large for workflow history are kept. */
  blobs?: BlobStore;
  log: Logger;
  queuePrefix: string;
  policyFile?: string;
  webhook?: { url?: string; secret?: string; allow: string[] };
  /** Posts the final report to Slack (the Slack integration plugs in here). */
  slack?: (target: NotificationTarget, report: InvestigationReport | TaskReport) => Promise<void>;
  /** Shows live progress in Slack (edits one message per change); answers the ts of a message it had to post first. */
  slackProgress?: (target: NotificationTarget, status: InvestigationStatus) => Promise<string | undefined>;
  /** The Slack target a workflow's input asks for, or why it is refused (DOCKET_SLACK_CHANNELS, Docket's seal). */
  slackTarget?: (workflowId: string, requested: SlackRequest, source: Source | undefined) => NotificationTarget;
}

export interface InvestigationPlan extends Plan {
  queuePrefix: string;
}

export interface ResponderSettings {
  engine: string;
  /** Absent in results recorded before tasks refused responders; workflows replaying them must not see it. */
  kind?: 'analyzer' | 'responder';
  timeoutMs: number;
  retries: number;
  queuePrefix: string;
  /** The responder's maxTlp / maxPap; absent in results recorded before they were checked. */
  maxTlp?: number;
  maxPap?: number;
}

/** Light activities run by the main worker, beside the workflows. */
export function createInvestigationActivities(deps: InvestigationActivityDeps) {
  return {
    /** Pairs one round of subjects with the engines that apply. */
    async planInvestigation(id: string, input: InvestigationInput, subjects: Subject[] = []): Promise<InvestigationPlan> {
      const engines = deps.registry.list().map((engine) => engine.manifest);
      const plan = planJobs(subjects, input.engines, engines, input.respond, { tlp: input.tlp, pap: input.pap });
      const skipped = plan.skipped?.length ? `, skipped ${plan.skipped.map((job) => job.engine).join(', ')}` : '';
      deps.log.job(id, `planned ${plan.jobs.length} engine job(s)${skipped}${plan.errors.length ? `; ${plan.errors.join('; ')}` : ''}`);
      return { ...plan, queuePrefix: deps.queuePrefix };
    },

    /** The response policy as it is now; a missing file means no automatic responses. */
    async loadPolicy(): Promise<Policy> {
      if (!deps.policyFile) return { rules: [] };
      let text: string;
      try {
        text = await readFile(deps.policyFile, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { rules: [] };
        throw error;
      }
      const result = validatePolicy(parseYaml(text), deps.policyFile);
      if (!result.ok) throw new Error(`the response policy is not valid: ${result.error}`);
      return result.policy;
    },

    async responderSettings(name: string): Promise<ResponderSettings | null> {
      const manifest = deps.registry.get(name);
      if (!manifest || manifest.kind !== 'responder') return null;
      return {
        engine: name, timeoutMs: manifest.timeout, retries: manifest.retries, queuePrefix: deps.queuePrefix, maxTlp: manifest.maxTlp, maxPap: manifest.maxPap,
      };
    },

    /** Any engine's run settings, or why it cannot run. */
    async engineSettings(name: string): Promise<ResponderSettings | { error: string }> {
      const manifest = deps.registry.get(name);
      if (!manifest) return { error: `engine ${name} is not declared; the engines are: ${deps.registry.names().join(', ') || 'none'}` };
      return { engine: name, kind: manifest.kind, timeoutMs: manifest.timeout, retries: manifest.retries, queuePrefix: deps.queuePrefix };
    },

    /** What the responders asked for by name act on; an undeclared one (or an analyzer) has no `accepts`. */
    async describeResponders(names: string[]): Promise<RequestedResponder[]> {
      return names.map((name) => {
        const manifest = deps.registry.get(name);
        return manifest?.kind === 'responder' ? { name, accepts: [...manifest.accepts] } : { name };
      });
    },

    /** Keeps a report too large for workflow history in the blob store (claim check). */
    async storeReport(report: InvestigationReport): Promise<BlobRef> {
      if (!deps.blobs) throw new Error('this worker has no blob store for large reports');
      const stored = await deps.blobs.putBuffer(JSON.stringify(report));
      return { sha256: stored.sha256, size: stored.size, filename: `${report.id}.json`, contentType: 'application/json' };
    },

    /** Live progress of a running investigation, for targets that show it (a Slack thread). */
    /** Answers the ts of the Slack message it posted when the target had none yet: the workflow edits that one from then on. */
    async progress(target: NotificationTarget, status: InvestigationStatus): Promise<string | undefined> {
      if (target.kind === 'slack' && !target.refused && deps.slackProgress) return deps.slackProgress(target, status);
      return undefined;
    },

    /**
     * Where this workflow reports. The gateway has refused what an API caller may not ask for; this
     * checks again, so a target that got past it (another entry point, an older gateway) is recorded
     * as refused instead of being sent to.
     */
    async notificationTargets(input: Pick<InvestigationInput, 'notify'> & { source?: Source }): Promise<NotificationTarget[]> {
      const targets: NotificationTarget[] = [];
      if (deps.webhook?.url) targets.push({ name: 'webhook', kind: 'webhook', url: deps.webhook.url });
      const asked = input.notify?.webhook;
      if (asked && asked !== deps.webhook?.url) {
        const checked = checkWebhook(asked, deps.webhook?.allow ?? []);
        if (checked.ok) {
          targets.push({ name: `webhook ${asked}`, kind: 'webhook', url: checked.url });
        } else {
          deps.log.warn(`${checked.reason}; not notified`);
          targets.push({ name: `webhook ${asked}`, kind: 'webhook', refused: checked.reason });
        }
      }
      const slack = input.notify?.slack;
      if (slack) {
        const target = deps.slackTarget
          ? deps.slackTarget(Context.current().info.workflowExecution?.workflowId ?? '', slack, input.source)
          : { name: `slack ${slack.channel}`, kind: 'slack' as const, refused: 'Slack is not configured on this worker: set SLACK_BOT_TOKEN' };
        if (target.refused) deps.log.warn(`${target.refused}; not notified`);
        targets.push(target);
      }
      return targets;
    },

    async notify(target: NotificationTarget, report: InvestigationReport | TaskReport): Promise<void> {
      if (target.kind === 'slack') {
        if (!deps.slack) throw new Error('Slack is not configured on this worker');
        await deps.slack(target, report);
      } else {
        const type = 'engine' in report ? 'task.finished' : 'investigation.finished';
        await deliverWebhook({ url: target.url!, secret: deps.webhook?.secret, id: `msg_${report.id}`, body: { type, data: report } });
      }
      deps.log.job(report.id, `notified ${target.name}`);
    },
  };
}

export type InvestigationActivities = ReturnType<typeof createInvestigationActivities>;
