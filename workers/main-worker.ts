import { type NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { createInvestigationActivities, type InvestigationActivityDeps } from '../activities/investigation-activities';
import type { EngineRegistry } from '../infra/engine-registry';
import type { Logger } from '../infra/log';
import { cachedWorkflowBundle } from './workflow-bundle';

export interface MainWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  queuePrefix: string;
  registry: EngineRegistry;
  log: Logger;
  policyFile?: string;
  blobs?: InvestigationActivityDeps['blobs'];
  webhook?: InvestigationActivityDeps['webhook'];
  slack?: InvestigationActivityDeps['slack'];
  slackProgress?: InvestigationActivityDeps['slackProgress'];
  slackTarget?: InvestigationActivityDeps['slackTarget'];
  /**
   * A prebuilt workflow bundle (tests build it once); otherwise the bundle cached on disk for the
   * current workflow sources (workers/workflow-bundle.ts), made at start when they changed.
   */
  workflowBundle?: WorkflowBundleOption;
}

/** The main worker: every workflow, and the light activities that need no Docker. */
export async function createMainWorker(options: MainWorkerOptions): Promise<Worker> {
  let workflowBundle = options.workflowBundle;
  if (!workflowBundle) {
    const started = Date.now();
    const cached = await cachedWorkflowBundle({ warn: (message) => options.log.warn(message) });
    options.log.info(`main worker: workflow bundle ${cached.key} ${cached.outcome === 'cached' ? 'from the cache' : 'bundled'} in ${Date.now() - started} ms`);
    workflowBundle = cached.bundle;
  }
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    workflowBundle,
    activities: createInvestigationActivities(options),
  });
}
