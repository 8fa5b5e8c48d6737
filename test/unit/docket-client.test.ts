import { Client, Connection } from '@temporalio/client';
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { DocketClient, scheduledStart } from '../../contract/client';
import { cancelSignal, reportQuery, sourceKey, statusQuery, WorkflowType, approveUpdate } from '../../contract/messages';
import type { ComplianceInput } from '../../core/compliance';
import { InvestigationInput, type InvestigationReport, type InvestigationStatus, TaskInput } from '../../core/investigation';

/**
 * The contract as the compiler holds it. `npm test` runs tsc over test/ first, and an
 * `@ts-expect-error` that no longer finds an error is itself an error there: each line below fails
 * the build both when the client accepts what it must refuse and when the refusal goes away.
 * These functions are compiled, never called.
 */
export async function typedMessages(docket: DocketClient): Promise<void> {
  const status: InvestigationStatus = await docket.query('id', statusQuery);
  const report: InvestigationReport = await docket.query('id', reportQuery);
  void status;
  void report;
  // @ts-expect-error a query is named by its definition in contract/messages.ts, never by a string
  await docket.query('id', 'status');
  // @ts-expect-error the report query answers a report, not a status
  const wrong: InvestigationStatus = await docket.query('id', reportQuery);
  void wrong;
  // A query renamed or retyped elsewhere is a new definition: its answer type no longer matches.
  const renamed = defineQuery<string>('state');
  // @ts-expect-error
  const notAStatus: InvestigationStatus = await docket.query('id', renamed);
  void notAStatus;

  await docket.signal('id', cancelSignal, { by: 'analyst' });
  // @ts-expect-error cancel carries a CancelRequest ({ by, reason? })
  await docket.signal('id', cancelSignal, { reason: 42 });
  // @ts-expect-error a signal is named by its definition, never by a string
  await docket.signal('id', 'cancel', { by: 'analyst' });
  // @ts-expect-error a signal defined with other arguments is not the cancel signal's
  await docket.signal('id', defineSignal<[number]>('cancel'), { by: 'analyst' });

  await docket.update('id', approveUpdate, { by: 'analyst' });
  // @ts-expect-error a decision names who decided
  await docket.update('id', approveUpdate, { responseId: 'r1' });
  // @ts-expect-error only approve and reject are decisions
  await docket.decide('id', 'escalate', { by: 'analyst' });
}

export function typedStarts(docket: DocketClient, investigation: InvestigationInput, task: TaskInput, compliance: ComplianceInput): void {
  void docket.startInvestigation(investigation);
  void docket.startTask(task, 'slack-1', { once: true });
  void docket.startCompliance(compliance);
  // @ts-expect-error a task is started with a task's input
  void docket.startTask(investigation);
  // @ts-expect-error a schedule's investigation is started with an investigation's input
  void docket.scheduledStart(WorkflowType.investigation, task, { workflowId: 'docket-nightly' });
  // @ts-expect-error only the workflow types of the contract can be scheduled
  void docket.scheduledStart('investigate', investigation, { workflowId: 'docket-nightly' });
}

describe('the Docket client', () => {
  it('builds a schedule action that starts the named workflow on the main queue, tagged with source schedule', () => {
    const input = TaskInput.parse({ engine: 'fileinfo', source: 'schedule' });
    const action = scheduledStart('t-docket', WorkflowType.task, input, { workflowId: 'docket-nightly', memo: { docketSchedule: { id: 'nightly' } } });
    expect(action).toEqual({
      type: 'startWorkflow',
      workflowType: 'task',
      workflowId: 'docket-nightly',
      taskQueue: 't-docket',
      args: [input],
      memo: { docketSchedule: { id: 'nightly' } },
      typedSearchAttributes: [{ key: sourceKey, value: 'schedule' }],
    });
  });

  it('schedules on its own task queue', () => {
    // A lazy connection never dials: building the action needs no server.
    const docket = new DocketClient(new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) }), 'p-docket');
    const input = InvestigationInput.parse({ text: 'seen at 203.0.113.5', source: 'schedule' });
    expect(docket.scheduledStart(WorkflowType.investigation, input, { workflowId: 'docket-x' })).toMatchObject({ taskQueue: 'p-docket', workflowType: 'investigation', args: [input] });
  });
});
