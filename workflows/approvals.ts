import { condition, setHandler } from '@temporalio/workflow';
import { approveUpdate, rejectUpdate } from '../contract/messages';
import type { Decision, ResponseRecord } from '../core/investigation';

/**
 * The approve and reject updates of a workflow whose responses may wait for a person (an
 * investigation, a compliance remediation): one pending response by id, or all of them. The gateway
 * sends them the same way to either.
 */
export function handleApprovals(responses: ResponseRecord[], changed: () => void = () => undefined): void {
  const decide = (state: 'approved' | 'rejected') => (decision: Decision) => {
    const at = new Date().toISOString();
    const pending = responses.filter((r) => r.approval.state === 'pending' && (!decision.responseId || r.id === decision.responseId));
    for (const response of pending) response.approval = { ...response.approval, state, by: decision.by, at, reason: decision.reason };
    changed();
    return pending;
  };
  const validateDecision = (decision: Decision) => {
    const pending = responses.filter((r) => r.approval.state === 'pending');
    if (!pending.length) throw new Error('nothing is waiting for approval here');
    if (decision.responseId && !pending.some((r) => r.id === decision.responseId)) {
      throw new Error(`no pending response ${decision.responseId}; pending: ${pending.map((r) => r.id).join(', ')}`);
    }
  };
  setHandler(approveUpdate, decide('approved'), { validator: validateDecision });
  setHandler(rejectUpdate, decide('rejected'), { validator: validateDecision });
}

/** Waits for a decision on a pending response until its expiry; true when it was approved. */
export async function approved(record: ResponseRecord, expiryMs: number): Promise<boolean> {
  const decided = await condition(() => record.approval.state !== 'pending', expiryMs);
  if (!decided) record.approval = { ...record.approval, state: 'expired' };
  return record.approval.state === 'approved';
}
