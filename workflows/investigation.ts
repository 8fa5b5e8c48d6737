import {
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { EngineActivities } from '../activities/engine-activities';
import type { InvestigationActivities } from '../activities/investigation-activities';
import { engineTaskQueue } from '../core/engine-manifest';
import {
  describeSubject,
  type EngineJobState,
  type EngineReport,
  type InvestigationInput,
  type InvestigationPhase,
  type InvestigationReport,
  type InvestigationStatus,
} from '../core/investigation';
import { summarize } from '../core/menagerie';
import type { PlannedJob } from '../core/plan';

export const statusQuery = defineQuery<InvestigationStatus>('status');

/** Engine jobs of one investigation that run at once; each engine worker bounds its own concurrency too. */
const PARALLEL_JOBS = 8;
/** Time beyond the engine's own timeout for copying input in and output out. */
const COPY_MARGIN_MS = 120_000;

const { planInvestigation } = proxyActivities<InvestigationActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

/** One investigation: plan the engine jobs, run them on their engines' task queues, report. */
export async function investigation(input: InvestigationInput): Promise<InvestigationReport> {
  const id = workflowInfo().workflowId;
  const startedAt = new Date().toISOString();
  let phase: InvestigationPhase = 'received';
  const states = new Map<number, EngineJobState>();
  setHandler(statusQuery, () => ({ id, phase, jobs: [...states.values()] }));

  const enter = (next: InvestigationPhase) => {
    phase = next;
    upsertMemo({ phase });
  };

  enter('parsing');
  const plan = await planInvestigation(id, input);
  enter('analyzing');
  plan.jobs.forEach((job, index) => states.set(index, { engine: job.engine, subject: describeSubject(job.subject), state: 'queued' }));

  const reports: EngineReport[] = new Array(plan.jobs.length);
  const errors = [...plan.errors];
  let next = 0;
  let finishedJobs = 0;
  const lane = async () => {
    while (next < plan.jobs.length) {
      const index = next++;
      const job = plan.jobs[index];
      states.set(index, { ...states.get(index)!, state: 'running' });
      reports[index] = await runJob(id, job, input, plan.queuePrefix);
      states.set(index, { ...states.get(index)!, state: reports[index].status });
      finishedJobs += 1;
      upsertMemo({ finishedJobs });
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_JOBS, plan.jobs.length) }, lane));

  enter('done');
  const failed = !plan.jobs.length || reports.some((report) => report.status !== 'success');
  return {
    id,
    status: failed ? 'Fail' : 'Success',
    source: input.source,
    startedAt,
    finishedAt: new Date().toISOString(),
    jobs: reports,
    errors,
  };
}

async function runJob(id: string, job: PlannedJob, input: InvestigationInput, queuePrefix: string): Promise<EngineReport> {
  const { runEngine } = proxyActivities<EngineActivities>({
    taskQueue: engineTaskQueue(job.engine, queuePrefix),
    startToCloseTimeout: job.timeoutMs + COPY_MARGIN_MS,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: job.retries + 1, initialInterval: '2 seconds', nonRetryableErrorTypes: ['ImageMissing', 'UnknownEngine'] },
  });
  const startedAt = new Date().toISOString();
  try {
    return await runEngine({ job: id, engine: job.engine, subject: job.subject, tlp: input.tlp, pap: input.pap, args: input.args });
  } catch (error) {
    const cause = error instanceof ActivityFailure ? error.cause : error;
    const message = cause instanceof Error ? cause.message : String(error);
    const timedOut = cause instanceof ApplicationFailure && cause.type === 'EngineTimeout';
    return {
      engine: job.engine,
      subject: job.subject,
      status: timedOut ? 'timeout' : 'error',
      startedAt,
      finishedAt: new Date().toISOString(),
      summary: summarize(message),
      errorMessage: message,
      truncated: false,
      taxonomies: [],
      artifacts: [],
      attempt: job.retries + 1,
    };
  }
}
