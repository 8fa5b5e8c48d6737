import { startTestSystem, type TestSystem } from '../helpers/system';

// Temporal's EventType numbers.
const WORKFLOW_TASK_COMPLETED = 7;
const ACTIVITY_TASK_SCHEDULED = 10;

/** What an investigation costs in Temporal round trips (issue 15): its light steps run inside its workflow tasks. */
describe('investigation round trips', () => {
  let docket: TestSystem;
  beforeAll(async () => {
    docket = await startTestSystem({ engineWorkers: false });
  });
  afterAll(async () => {
    await docket?.close();
  });

  it('finishes an investigation in which no engine applies in at most two workflow tasks and no activity task', async () => {
    const response = await fetch(`${docket.baseUrl}/v1/investigations`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'the appliance is exposed to CVE-2021-44228' }),
    });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    const report = await docket.client.workflow.getHandle(id).result();
    expect(report.observables).toEqual([expect.objectContaining({ type: 'cve', data: 'CVE-2021-44228' })]);
    const { events } = await docket.client.workflow.getHandle(id).fetchHistory();
    const types = (events ?? []).map((event) => Number(event.eventType));
    expect(types.filter((type) => type === ACTIVITY_TASK_SCHEDULED)).toEqual([]);
    expect(types.filter((type) => type === WORKFLOW_TASK_COMPLETED).length).toBeLessThanOrEqual(2);
  });
});
