import { type NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { createInvestigationActivities, type InvestigationActivityDeps } from '../activities/investigation-activities';
import type { EngineRegistry } from '../infra/engine-registry';
import type { Logger } from '../infra/log';

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
  /** A prebuilt workflow bundle (tests build it once); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
}

/** The main worker: every workflow, and the light activities that need no Docker. */
export async function createMainWorker(options: MainWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: createInvestigationActivities(options),
  });
}
