import { ActivityFailure, ApplicationFailure, isCancellation, proxyActivities } from '@temporalio/workflow';
import type { EngineActivities } from '../activities/engine-activities';
import { FailureType, NON_RETRYABLE_FAILURES } from '../contract/messages';
import { engineTaskQueue } from '../core/engine-manifest';
import type { EngineReport } from '../core/investigation';
import { summarize } from '../core/menagerie';
import type { PlannedJob } from '../core/plan';

/** Time beyond the engine's own timeout for copying input in and output out. */
const COPY_MARGIN_MS = 120_000;

export interface JobOptions {
  tlp: number;
  pap: number;
  args?: string[];
  env?: Record<string, string>;
  force?: boolean;
  /** Cortex `parameters` for the engine (a compliance finding for a bot), beside the idempotency key. */
  parameters?: Record<string, unknown>;
  /** Cortex's `message` for the engine. */
  message?: string;
}

/**
 * Runs one engine job as an activity on the engine's own task queue, with the manifest's timeout
 * and retries. Failures that survive the retries become a report (status timeout or error), so one
 * engine never fails the whole investigation; a cancellation is passed on.
 */
export async function runEngineJob(id: string, runId: string, job: PlannedJob, options: JobOptions, queuePrefix: string, idempotencyKey?: string): Promise<EngineReport> {
  const { runEngine } = proxyActivities<EngineActivities>({
    taskQueue: engineTaskQueue(job.engine, queuePrefix),
    startToCloseTimeout: job.timeoutMs + COPY_MARGIN_MS,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: job.retries + 1, initialInterval: '2 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
  });
  const startedAt = new Date().toISOString();
  try {
    return await runEngine({
      job: id, engine: job.engine, subject: job.subject, tlp: options.tlp, pap: options.pap, args: options.args, env: options.env,
      force: options.force,
      message: options.message,
      parameters: idempotencyKey ? { ...options.parameters, idempotency_key: idempotencyKey, workflow_run: runId } : options.parameters,
    });
  } catch (error) {
    if (isCancellation(error)) throw error;
    const cause = error instanceof ActivityFailure ? error.cause : error;
    const message = cause instanceof Error ? cause.message : String(error);
    const timedOut = cause instanceof ApplicationFailure && cause.type === FailureType.timeout;
    return {
      engine: job.engine, subject: job.subject, status: timedOut ? 'timeout' : 'error', startedAt, finishedAt: new Date().toISOString(),
      summary: summarize(message), errorMessage: message, truncated: false, taxonomies: [], artifacts: [], attempt: job.retries + 1,
    };
  }
}
