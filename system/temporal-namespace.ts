import type { Connection } from '@temporalio/client';
import { msNumberToTs, tsToMs } from '@temporalio/common/lib/time';
import type { Logger } from '../infra/log';

function isNotFound(error: unknown): boolean {
  return (error as { code?: number }).code === 5;
}

/** The namespace's history retention in milliseconds, as the server reports it. */
export async function namespaceRetentionMs(connection: Connection, namespace: string): Promise<number> {
  const described = await connection.workflowService.describeNamespace({ namespace });
  return tsToMs(described.config?.workflowExecutionRetentionTtl);
}

/**
 * Creates `namespace` with the retention when it does not exist yet (a fresh production server has only
 * the `temporal-system` namespace); answers whether it created it.
 */
export async function registerNamespace(connection: Connection, namespace: string, retentionMs: number): Promise<boolean> {
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return false;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await connection.workflowService.registerNamespace({
    namespace,
    description: 'Docket investigations',
    workflowExecutionRetentionPeriod: msNumberToTs(retentionMs),
  });
  return true;
}

/**
 * Sets the namespace's history retention to DOCKET_RETENTION when it differs. Every role runs this at
 * start, so a changed setting takes effect on the next start; the dev server's namespace would
 * otherwise keep its 24 hours and drop every job's history a day after it ends.
 */
export async function applyRetention(connection: Connection, namespace: string, retentionMs: number, log: Logger): Promise<void> {
  const days = (ms: number) => `${+(ms / 86_400_000).toFixed(2)} days`;
  try {
    const current = await namespaceRetentionMs(connection, namespace);
    if (current === retentionMs) return;
    await connection.workflowService.updateNamespace({ namespace, config: { workflowExecutionRetentionTtl: msNumberToTs(retentionMs) } });
    log.info(`temporal: history retention of namespace ${namespace} set to ${days(retentionMs)} (was ${days(current)})`);
  } catch (error) {
    // Temporal Cloud and locked-down clusters refuse namespace changes to workers: say how to make them by hand.
    log.warn(
      `temporal: cannot set the history retention of namespace ${namespace} to ${days(retentionMs)} (${(error as Error).message}); `
      + `set it with: temporal operator namespace update --namespace ${namespace} --retention ${Math.round(retentionMs / 3_600_000)}h`,
    );
  }
}
