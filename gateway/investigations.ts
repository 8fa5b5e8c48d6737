import { randomUUID } from 'node:crypto';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type { InvestigationInput, InvestigationPhase, InvestigationReport } from '../core/investigation';
import { notFound } from './errors';

/** What the gateway knows of one investigation without asking a worker. */
export type InvestigationView =
  | { state: 'running'; phase: InvestigationPhase; finishedJobs: number; engineStarted: boolean }
  | { state: 'completed'; report: InvestigationReport }
  | { state: 'failed'; message: string };

// Temporal's PendingActivityState.STARTED
const ACTIVITY_STARTED = 2;

/**
 * Starts and reads investigations through the Temporal client only. Reading uses the workflow's
 * description, memo and result, so it works while no worker is running.
 */
export class Investigations {
  constructor(private readonly client: Client, private readonly taskQueue: string) {}

  /** Resolves once Temporal has durably recorded the start: the job cannot be lost after this. */
  async start(input: InvestigationInput, id: string = randomUUID()): Promise<string> {
    await this.client.workflow.start('investigation', {
      taskQueue: this.taskQueue,
      workflowId: id,
      args: [input],
      memo: { phase: 'received', finishedJobs: 0 },
    });
    return id;
  }

  async view(id: string): Promise<InvestigationView> {
    const handle = this.client.workflow.getHandle(id);
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError || (error as { code?: number }).code === 5) {
        throw notFound(`no job ${id}: use the jobid that the upload answered`);
      }
      throw error;
    }
    const status = description.status.name;
    if (status === 'RUNNING') {
      const memo = (description.memo ?? {}) as { phase?: InvestigationPhase; finishedJobs?: number };
      const pending = description.raw.pendingActivities ?? [];
      return {
        state: 'running',
        phase: memo.phase ?? 'received',
        finishedJobs: memo.finishedJobs ?? 0,
        engineStarted: pending.some((activity) => activity.state === ACTIVITY_STARTED),
      };
    }
    if (status === 'COMPLETED') return { state: 'completed', report: (await handle.result()) as InvestigationReport };
    if (status === 'CONTINUED_AS_NEW') return this.view(id);
    let message = `the investigation was ${status.toLowerCase().replace('_', ' ')}`;
    try {
      await handle.result();
    } catch (error) {
      const cause = (error as { cause?: Error }).cause;
      if (cause?.message) message += `: ${cause.message}`;
    }
    return { state: 'failed', message };
  }
}
