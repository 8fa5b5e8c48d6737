import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { BlobRef, InvestigationInput, InvestigationReport, InvestigationStatus, Subject, TaskReport } from '../core/investigation';
import { type Plan, planJobs } from '../core/plan';
import { type Policy, validatePolicy } from '../core/policy';
import type { BlobStore } from './blob-store';
import type { EngineRegistry } from './engine-registry';
import type { Logger } from './log';
import { deliverWebhook } from './webhook';

export interface NotificationTarget {
  name: string;
  kind: 'webhook' | 'slack';
  url?: string;
  channel?: string;
  thread?: string;
}

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
  /** Shows live progress in Slack (edits one message per change). */
  slackProgress?: (target: NotificationTarget, status: InvestigationStatus) => Promise<void>;
}

export interface InvestigationPlan extends Plan {
  queuePrefix: string;
}

export interface ResponderSettings {
  engine: string;
  timeoutMs: number;
  retries: number;
  queuePrefix: string;
}

/** Light activities run by the main worker, beside the workflows. */
export function createInvestigationActivities(deps: InvestigationActivityDeps) {
  return {
    /** Pairs one round of subjects with the engines that apply. */
    async planInvestigation(id: string, input: InvestigationInput, subjects: Subject[] = []): Promise<InvestigationPlan> {
      const engines = deps.registry.list().map((engine) => engine.manifest);
      const plan = planJobs(subjects, input.engines, engines);
      deps.log.job(id, `planned ${plan.jobs.length} engine job(s)${plan.errors.length ? `; ${plan.errors.join('; ')}` : ''}`);
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
      return { engine: name, timeoutMs: manifest.timeout, retries: manifest.retries, queuePrefix: deps.queuePrefix };
    },

    /** Any engine's run settings, or why it cannot run. */
    async engineSettings(name: string): Promise<ResponderSettings | { error: string }> {
      const manifest = deps.registry.get(name);
      if (!manifest) return { error: `engine ${name} is not declared; the engines are: ${deps.registry.names().join(', ') || 'none'}` };
      return { engine: name, timeoutMs: manifest.timeout, retries: manifest.retries, queuePrefix: deps.queuePrefix };
    },

    /** Keeps a report too large for workflow history in the blob store (claim check). */
    async storeReport(report: InvestigationReport): Promise<BlobRef> {
      if (!deps.blobs) throw new Error('this worker has no blob store for large reports');
      const stored = await deps.blobs.putBuffer(JSON.stringify(report));
      return { sha256: stored.sha256, size: stored.size, filename: `${report.id}.json`, contentType: 'application/json' };
    },

    /** Live progress of a running investigation, for targets that show it (a Slack thread). */
    async progress(target: NotificationTarget, status: InvestigationStatus): Promise<void> {
      if (target.kind === 'slack' && deps.slackProgress) await deps.slackProgress(target, status);
    },

    async notificationTargets(input: Pick<InvestigationInput, 'notify'>): Promise<NotificationTarget[]> {
      const targets: NotificationTarget[] = [];
      if (deps.webhook?.url) targets.push({ name: 'webhook', kind: 'webhook', url: deps.webhook.url });
      const asked = input.notify?.webhook;
      if (asked && asked !== deps.webhook?.url) {
        if (deps.webhook?.allow.some((prefix) => asked.startsWith(prefix))) targets.push({ name: `webhook ${asked}`, kind: 'webhook', url: asked });
        else deps.log.warn(`webhook ${asked} is not allowed by DOCKET_WEBHOOK_ALLOW; not notified`);
      }
      if (input.notify?.slack && deps.slack) targets.push({ name: `slack ${input.notify.slack.channel}`, kind: 'slack', ...input.notify.slack });
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
