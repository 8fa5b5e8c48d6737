import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { InvestigationActivities } from '../activities/investigation-activities';
import type { NotificationRecord, TaskInput, TaskReport } from '../core/investigation';
import { runEngineJob } from './engine-job';
import { notifyAll } from './notify';

const activities = proxyActivities<InvestigationActivities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } });

/**
 * One engine run with arguments and environment, as CloudPassage's containerized tasks were: a
 * periodic scan or event shipper from a schedule, or `run <engine> <args>` from chat. Its result is
 * what the engine printed (stdout) or wrote (file, cortex).
 */
export async function task(input: TaskInput): Promise<TaskReport> {
  const { workflowId: id, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const errors: string[] = [];
  const notified: NotificationRecord[] = [];
  const settings = await activities.engineSettings(input.engine);
  let report: TaskReport['report'];
  if ('error' in settings) {
    errors.push(settings.error);
  } else if (settings.kind === 'responder') {
    // A task has no approval step, and a responder acts on the world: it runs only as an
    // investigation's response. Settings recorded before `kind` existed replay as they ran.
    errors.push(`engine ${input.engine} is a responder, so a task does not run it: ask for it in an investigation's "respond" `
      + '(POST /v1/investigations; in Slack, `run` by an approver; in a schedule, action.investigate.respond), where it waits for approval '
      + 'unless the policy says approval: none');
  } else {
    const subject = { kind: 'observable' as const, observable: { type: 'other' as const, data: input.args.join(' ') || input.engine } };
    report = await runEngineJob(id, runId, { ...settings, subject }, { tlp: 2, pap: 2, args: input.args, env: input.env, force: true }, settings.queuePrefix);
  }
  const result = (): TaskReport => ({
    id, engine: input.engine, status: report?.status === 'success' ? 'Success' : 'Fail', source: input.source,
    startedAt, finishedAt: new Date().toISOString(), report, notifications: notified, errors,
  });
  await notifyAll(await activities.notificationTargets(input), result, notified);
  return result();
}
