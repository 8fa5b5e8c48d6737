import { ActivityFailure, proxyActivities } from '@temporalio/workflow';
import type { InvestigationActivities, NotificationTarget } from '../activities/investigation-activities';
import type { InvestigationReport, NotificationRecord, TaskReport } from '../core/investigation';

const notifications = proxyActivities<InvestigationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1 second', backoffCoefficient: 2 },
});

/**
 * Sends the final report to every target; a failed notification is recorded, never fatal. A target
 * the worker refused (not allowed by DOCKET_WEBHOOK_ALLOW or DOCKET_SLACK_CHANNELS) is recorded with
 * the reason and never sent to.
 */
export async function notifyAll(targets: NotificationTarget[], report: () => InvestigationReport | TaskReport, into: NotificationRecord[]): Promise<void> {
  for (const target of targets) {
    if (target.refused) {
      into.push({ target: target.name, state: 'failed', detail: target.refused });
      continue;
    }
    try {
      await notifications.notify(target, report());
      into.push({ target: target.name, state: 'sent' });
    } catch (error) {
      const cause = error instanceof ActivityFailure ? error.cause : error;
      into.push({ target: target.name, state: 'failed', detail: cause instanceof Error ? cause.message : String(cause) });
    }
  }
}
