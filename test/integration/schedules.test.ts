import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ScheduleNotFoundError } from '@temporalio/client';
import { parse as parseYaml, stringify } from 'yaml';
import { temporalScheduleId } from '../../contract/messages';
import { compileSchedule, loadScheduleFiles, reconcileSchedules } from '../../infra/schedule-control';
import { KeyStore } from '../../gateway/keys';
import { findTemporalCli } from '../../system/temporal-dev';
import { enginesFolder, getJson } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';
import { startWebhookReceiver } from '../helpers/webhook-receiver';

const run = promisify(execFile);
const MINUTE = 60_000;

/**
 * Schedules as code on real Temporal: `schedules/*.yaml` reconciled into Temporal Schedules whose
 * runs start real engine containers, controlled through the API and the CLI.
 */
describe('schedules', () => {
  const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
  // A CloudPassage-style shipper: what it prints is its result; its token comes from the worker's environment.
  const shipper = {
    name: 'shipper', kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout', timeout: '30s', cache: '0',
    command: ['/bin/sh', '-c', 'echo "shipped batch $0 with token=$SHIPPER_TOKEN"'],
  };
  const schedulesDir = mkdtempSync(join(tmpdir(), 'docket-schedules-'));
  const token = `tok-${randomBytes(4).toString('hex')}`;
  let docket: TestSystem;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let key: string;

  const writeSchedule = (file: string, doc: Record<string, unknown>) => writeFileSync(join(schedulesDir, file), stringify(doc));
  const shipperSchedule = (args: string[], extra: Record<string, unknown> = {}) => ({
    id: 'shipper',
    description: 'ships the event batch every minute',
    interval: '1m',
    action: { run: { engine: 'shipper', args, env: { SHIPPER_TOKEN: '${DOCKET_TEST_SHIPPER_TOKEN}', MODE: 'batch' } } },
    notify: [{ webhook: receiver.url }],
    ...extra,
  });
  const reconcile = () => reconcileSchedules({
    client: docket.client, dir: schedulesDir, taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}docket`,
    queuePrefix: docket.config.DOCKET_QUEUE_PREFIX, engines: docket.registry.names(),
  });
  const handle = (id: string) => docket.client.schedule.getHandle(temporalScheduleId(docket.config.DOCKET_QUEUE_PREFIX, id));
  const post = async (path: string, body: unknown = {}) => {
    const response = await fetch(`${docket.baseUrl}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const listed = async (id: string) => {
    const { body } = await getJson(`${docket.baseUrl}/v1/schedules`);
    return (body.schedules as any[]).find((schedule) => schedule.id === id);
  };
  const shipments = () => receiver.received.map((r) => JSON.parse(r.body)).filter((b) => b.type === 'task.finished' && b.data.source === 'schedule');

  beforeAll(async () => {
    process.env.DOCKET_TEST_SHIPPER_TOKEN = token;
    receiver = await startWebhookReceiver();
    writeSchedule('shipper.yaml', shipperSchedule(['nightly']));
    docket = await startTestSystem({
      enginesDir: enginesFolder([shipper, sample('ioc-lookup')]),
      env: {
        DOCKET_SCHEDULES_DIR: schedulesDir,
        DOCKET_WEBHOOK_ALLOW: new URL(receiver.url).origin,
        DOCKET_ANONYMOUS: 'read',
      },
    });
    key = (await new KeyStore(join(docket.dataDir, 'keys.json')).create('operator', 'respond')).key;
  });
  afterAll(async () => {
    await docket?.close();
    await receiver?.close();
    rmSync(schedulesDir, { recursive: true, force: true });
  });

  it('ships its example schedules valid, and paused', async () => {
    const loaded = await loadScheduleFiles(join(ROOT, 'schedules'));
    expect(loaded.errors).toEqual([]);
    expect(loaded.schedules.length).toBeGreaterThan(0);
    for (const item of loaded.schedules) {
      const compiled = compileSchedule(item, { taskQueue: 'docket', queuePrefix: '' });
      expect(compiled).toMatchObject({ ok: true, options: { state: { paused: true } } });
    }
  });

  it('creates the schedule at start; its runs start the engine with the worker-side environment and notify', async () => {
    const description = await handle('shipper').describe();
    expect(description.memo).toMatchObject({ managedBy: 'docket' });
    // The secret's name is in the schedule, never its value.
    expect(JSON.stringify(description.action)).toContain('${DOCKET_TEST_SHIPPER_TOKEN}');
    expect(JSON.stringify(description.action)).not.toContain(token);

    const [delivery] = await poll(async () => shipments(), (found) => found.length > 0, 'a scheduled run to notify', 3 * MINUTE);
    expect(delivery.data).toMatchObject({ engine: 'shipper', status: 'Success', source: 'schedule' });
    expect(delivery.data.report.summary).toBe(`shipped batch nightly with token=${token}\n`);
    expect(delivery.data.id).toMatch(new RegExp(`^${temporalScheduleId(docket.config.DOCKET_QUEUE_PREFIX, 'shipper')}-`));

    const entry = await poll(() => listed('shipper'), (s) => s?.recentRuns?.[0]?.outcome === 'Success', 'the listing to show the run');
    expect(entry).toMatchObject({ action: 'run', engine: 'shipper', intervalMs: MINUTE, paused: false, description: 'ships the event batch every minute' });
    expect(new Date(entry.nextRuns[0]).getTime()).toBeGreaterThan(Date.now() - 5_000);

    const { stdout } = await run(findTemporalCli(ROOT), ['schedule', 'list', '--address', docket.config.temporalAddress]);
    expect(stdout).toContain(temporalScheduleId(docket.config.DOCKET_QUEUE_PREFIX, 'shipper'));
  });

  it('changes nothing when reconciled again, and updates the schedule when its file changes', async () => {
    const again = await reconcile();
    expect(again).toMatchObject({ created: [], updated: [], deleted: [], errors: [], unchanged: ['shipper'] });

    writeSchedule('shipper.yaml', shipperSchedule(['hourly'], { overlap: 'buffer_one', catchupWindow: '5m' }));
    const edited = await reconcile();
    expect(edited).toMatchObject({ created: [], updated: ['shipper'], deleted: [], errors: [] });
    const description = await handle('shipper').describe();
    expect((description.action.args as any[])[0]).toMatchObject({ engine: 'shipper', args: ['hourly'], source: 'schedule' });
    expect(description.policies).toMatchObject({ overlap: 'BUFFER_ONE', catchupWindow: 5 * MINUTE });
    expect((await reconcile()).unchanged).toEqual(['shipper']);
  });

  it('takes no run while paused, and runs again at once when triggered', async () => {
    const paused = await post('/v1/schedules/shipper/pause', { note: 'maintenance window' });
    expect(paused).toMatchObject({ status: 200, body: { id: 'shipper', done: 'paused' } });
    const before = await handle('shipper').describe();
    expect(before.state).toMatchObject({ paused: true, note: 'maintenance window' });
    const taken = before.info.numActionsTaken;
    // Wait past the run the schedule would have taken next.
    const due = Math.ceil((Date.now() + 1) / MINUTE) * MINUTE;
    await new Promise((resolve) => setTimeout(resolve, due - Date.now() + 8_000));
    expect((await handle('shipper').describe()).info.numActionsTaken).toBe(taken);
    expect((await listed('shipper')).paused).toBe(true);

    const seen = shipments().length;
    expect((await post('/v1/schedules/shipper/trigger')).status).toBe(200);
    const delivered = await poll(async () => shipments(), (found) => found.length > seen, 'the triggered run to notify');
    expect(delivered[delivered.length - 1].data.report.summary).toBe(`shipped batch hourly with token=${token}\n`);

    expect((await post('/v1/schedules/shipper/unpause')).body.done).toBe('unpaused');
    expect((await handle('shipper').describe()).state.paused).toBe(false);
  });

  it('backfills a past range: one run per interval in it', async () => {
    writeSchedule('backfilled.yaml', { ...shipperSchedule(['catch-up']), id: 'backfilled', paused: true, notify: [] });
    expect((await reconcile()).created).toEqual(['backfilled']);
    const hourAgo = Math.floor((Date.now() - 60 * MINUTE) / MINUTE) * MINUTE;
    // Temporal counts start exclusive and end inclusive; off-minute bounds make that moot: 3 runs.
    const answer = await post('/v1/schedules/backfilled/backfill', {
      start: new Date(hourAgo + 30_000).toISOString(), end: new Date(hourAgo + 3 * MINUTE + 30_000).toISOString(),
    });
    expect(answer).toMatchObject({ status: 200, body: { done: 'backfilled', estimatedRuns: 3 } });
    const scheduleId = temporalScheduleId(docket.config.DOCKET_QUEUE_PREFIX, 'backfilled');
    const started = await poll(async () => {
      const ids: string[] = [];
      for await (const workflow of docket.client.workflow.list({ query: `TemporalScheduledById = '${scheduleId}'` })) ids.push(workflow.workflowId);
      return ids.sort();
    }, (ids) => ids.length >= 3, 'the backfilled runs');
    expect(started).toEqual([1, 2, 3].map((n) => `${scheduleId}-${new Date(hourAgo + n * MINUTE).toISOString().replace('.000', '')}`));

    const tooWide = await post('/v1/schedules/backfilled/backfill', { start: '2020-01-01T00:00:00Z', end: '2021-01-01T00:00:00Z' });
    expect(tooWide.status).toBe(400);
    expect(tooWide.body.error.message).toMatch(/at most 1000/);
  });

  it('answers 404 for a schedule it does not manage, and 401 to a caller without the respond role', async () => {
    expect((await post('/v1/schedules/nope/pause')).status).toBe(404);
    const anonymous = await fetch(`${docket.baseUrl}/v1/schedules/shipper/pause`, { method: 'POST' });
    expect(anonymous.status).toBe(401);
  });

  it('lists and pauses through the CLI', async () => {
    const env = {
      ...process.env, TEMPORAL_ADDRESS: docket.config.temporalAddress, DOCKET_QUEUE_PREFIX: docket.config.DOCKET_QUEUE_PREFIX,
      DOCKET_SCHEDULES_DIR: schedulesDir,
    };
    const cli = (...args: string[]) => run('npx', ['tsx', join(ROOT, 'scripts/schedules.ts'), ...args], { env, cwd: ROOT });
    const { stdout } = await cli('list');
    expect(stdout).toMatch(/^shipper\s+run shipper\s+every 1m\s+no\s/m);
    expect(stdout).toMatch(/^backfilled\s+run shipper\s+every 1m\s+yes\s/m);
    expect((await cli('pause', 'shipper', '--note', 'from the CLI')).stdout).toContain('shipper: paused');
    expect((await handle('shipper').describe()).state).toMatchObject({ paused: true, note: 'from the CLI' });
  });

  it('skips a file with an error, naming the file and field, and keeps its schedule', async () => {
    writeSchedule('backfilled.yaml', { ...shipperSchedule(['catch-up']), id: 'backfilled', interval: '5' });
    writeSchedule('broken.yaml', { id: 'Broken!', interval: '1m', action: {} });
    writeSchedule('elsewhere.yaml', { ...shipperSchedule(['x']), id: 'elsewhere', timezone: 'Mars/Olympus_Mons' });
    const report = await reconcile();
    expect(report.errors).toEqual(expect.arrayContaining([
      expect.stringMatching(/backfilled\.yaml: interval: expected a duration with its unit/),
      expect.stringMatching(/broken\.yaml: .*id: a slug/),
      expect.stringMatching(/elsewhere\.yaml: timezone: Temporal does not know Mars\/Olympus_Mons/),
    ]));
    expect(report.deleted).toEqual([]);
    expect((await handle('backfilled').describe()).state.paused).toBe(true);
    rmSync(join(schedulesDir, 'broken.yaml'));
    rmSync(join(schedulesDir, 'elsewhere.yaml'));
  });

  it('deletes the schedules whose files are gone, and only those Docket manages', async () => {
    const foreignId = `${docket.config.DOCKET_QUEUE_PREFIX}docket-hand-made`;
    await docket.client.schedule.create({
      scheduleId: foreignId, spec: { intervals: [{ every: '1h' }] }, state: { paused: true },
      action: { type: 'startWorkflow', workflowType: 'task', taskQueue: 'nowhere', args: [] },
    });
    rmSync(join(schedulesDir, 'shipper.yaml'));
    rmSync(join(schedulesDir, 'backfilled.yaml'));
    const report = await reconcile();
    expect(report.deleted.sort()).toEqual(['backfilled', 'shipper']);
    await expect(handle('shipper').describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await poll(() => listed('shipper'), (entry) => entry === undefined, 'the listing to drop it');
    expect((await docket.client.schedule.getHandle(foreignId).describe()).scheduleId).toBe(foreignId);
    await docket.client.schedule.getHandle(foreignId).delete();
  });
});
