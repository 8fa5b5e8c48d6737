import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, QueryNotRegisteredError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { InvestigationPlan, NotificationTarget, ResponderSettings } from '../../activities/investigation-activities';
import type { RunEngineInput } from '../../activities/engine-activities';
import { approveUpdate, botJobId, cancelSignal, rejectUpdate, statusQuery, verdictKey, WorkflowType } from '../../contract/messages';
import { ComplianceFinding, type ComplianceInput } from '../../core/compliance';
import { engineTaskQueue } from '../../core/engine-manifest';
import {
  type BlobRef, type EngineReport, InvestigationInput, type InvestigationReport, type InvestigationStatus, type Subject, subjectKey,
} from '../../core/investigation';
import type { PlannedJob } from '../../core/plan';
import type { Policy } from '../../core/policy';
import type { compliance } from '../../workflows/compliance';
import type { investigation } from '../../workflows/investigation';

/**
 * The investigation workflow's phases (parse, analyze, verdict, respond, notify), and the compliance
 * workflow's bots, run on the test
 * Temporal server by the real workflow bundle, against stand-in activities: plain functions that
 * answer canned plans and engine reports on the task queues the workflow sends them to. No engine
 * container runs, so each test states exactly what the engines said.
 */

// Workers log their start, stop and the failures the tests provoke; what matters here is in the assertions.
Runtime.install({ logger: new DefaultLogger('ERROR') });

const ROOT = resolve(__dirname, '../..');
const RESPONDER = 'blocklist';
const ANALYZER = 'alpha';

function temporalAddress(): string {
  const address = process.env.DOCKET_TEST_TEMPORAL;
  if (!address) throw new Error('no test Temporal server: run the tests through jest (its global setup starts one)');
  return address;
}

function workflowCode() {
  const bundle = process.env.DOCKET_TEST_BUNDLE;
  return bundle ? { workflowBundle: { codePath: bundle } } : { workflowsPath: join(ROOT, 'workflows') };
}

/**
 * What the stand-in activities answer. Every engine named here gets a worker on its own task queue,
 * and is a declared responder for `responderSettings` (what a bot or a response asks for).
 */
interface StandIns {
  /** The planner: jobs (and errors) for one round of subjects; by default one ANALYZER job per subject. */
  plan?: (subjects: Subject[]) => { jobs: PlannedJob[]; errors?: string[] };
  engines?: Record<string, (input: RunEngineInput) => EngineReport>;
  policy?: Policy;
  targets?: NotificationTarget[];
  notify?: (target: NotificationTarget, report: InvestigationReport) => void;
  storeReport?: (report: InvestigationReport) => BlobRef;
}

interface Bench {
  start(input: Partial<InvestigationInput>): Promise<WorkflowHandle<typeof investigation>>;
  startCompliance(input: ComplianceInput): Promise<WorkflowHandle<typeof compliance>>;
  /** Every engine request each engine's stand-in received, in order. */
  calls: Map<string, RunEngineInput[]>;
}

let connection: Connection;
let client: Client;
let workerConnection: NativeConnection;

beforeAll(async () => {
  connection = await Connection.connect({ address: temporalAddress() });
  client = new Client({ connection });
  workerConnection = await NativeConnection.connect({ address: temporalAddress() });
});

afterAll(async () => {
  await workerConnection?.close();
  await connection?.close();
});

function job(subject: Subject, engine = ANALYZER): PlannedJob {
  return { engine, subject, timeoutMs: 30_000, retries: 0 };
}

function engineReport(input: RunEngineInput, extra: Partial<EngineReport> = {}): EngineReport {
  const at = new Date().toISOString();
  return {
    engine: input.engine, subject: input.subject, status: 'success', startedAt: at, finishedAt: at, summary: 'ok', truncated: false,
    taxonomies: [], artifacts: [], attempt: 1, ...extra,
  };
}

function dataOf(subject: Subject): string {
  if (subject.kind === 'object') return subject.object.dataType;
  return subject.kind === 'observable' ? subject.observable.data : subject.file.sha256;
}

function domain(data: string) {
  return { type: 'domain' as const, data };
}

/**
 * Runs `body` with a main worker (the workflow bundle and the light activities) on a task queue of
 * its own and one worker per stand-in engine on `<prefix>engine.<name>`, then stops them and
 * terminates any investigation the body left open, so nothing lingers on the shared server.
 */
async function withWorkers(standIns: StandIns, body: (bench: Bench) => Promise<void>): Promise<void> {
  const taskQueue = `phases-${randomBytes(4).toString('hex')}`;
  const queuePrefix = `${taskQueue}-`;
  const calls = new Map<string, RunEngineInput[]>();
  const plan: NonNullable<StandIns['plan']> = standIns.plan ?? ((subjects: Subject[]) => ({ jobs: subjects.map((subject) => job(subject)) }));
  const activities = {
    async notificationTargets(): Promise<NotificationTarget[]> {
      return standIns.targets ?? [];
    },
    async planInvestigation(_id: string, _input: InvestigationInput, subjects: Subject[]): Promise<InvestigationPlan> {
      const planned = plan(subjects);
      return { jobs: planned.jobs, errors: planned.errors ?? [], queuePrefix };
    },
    async loadPolicy(): Promise<Policy> {
      return standIns.policy ?? { rules: [] };
    },
    async responderSettings(name: string): Promise<ResponderSettings | null> {
      return Object.hasOwn(standIns.engines ?? {}, name) ? { engine: name, timeoutMs: 30_000, retries: 0, queuePrefix } : null;
    },
    async describeResponders(names: string[]) {
      return names.map((name) => (name === RESPONDER ? { name, accepts: ['domain'] } : { name }));
    },
    async storeReport(report: InvestigationReport): Promise<BlobRef> {
      if (!standIns.storeReport) throw ApplicationFailure.nonRetryable('this test stores no reports');
      return standIns.storeReport(report);
    },
    async progress(): Promise<string | undefined> {
      return undefined;
    },
    async notify(target: NotificationTarget, report: InvestigationReport): Promise<void> {
      standIns.notify?.(target, report);
    },
  };
  const engines = Object.entries(standIns.engines ?? {});
  const workers = await Promise.all([
    Worker.create({ connection: workerConnection, taskQueue, ...workflowCode(), activities }),
    ...engines.map(([name, answer]) => {
      calls.set(name, []);
      const runEngine = async (input: RunEngineInput): Promise<EngineReport> => {
        calls.get(name)!.push(input);
        return answer(input);
      };
      return Worker.create({ connection: workerConnection, taskQueue: engineTaskQueue(name, queuePrefix), activities: { runEngine } });
    }),
  ]);
  const running = workers.map((worker) => worker.run());
  const started: WorkflowHandle[] = [];
  const start = async (input: Partial<InvestigationInput>) => {
    const handle = await client.workflow.start<typeof investigation>(WorkflowType.investigation, {
      taskQueue, workflowId: `${taskQueue}-${started.length + 1}`, args: [InvestigationInput.parse(input)],
    });
    started.push(handle);
    return handle;
  };
  const startCompliance = async (input: ComplianceInput) => {
    const handle = await client.workflow.start<typeof compliance>(WorkflowType.compliance, {
      taskQueue, workflowId: `${taskQueue}-${started.length + 1}`, args: [input],
    });
    started.push(handle);
    return handle;
  };
  try {
    await body({ start, startCompliance, calls });
  } finally {
    for (const handle of started) {
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') await handle.terminate('the test ended before the investigation did');
    }
    for (const worker of workers) worker.shutdown();
    await Promise.all(running);
  }
}

/**
 * Asks the workflow its status until `done` holds; bounded, so a workflow that never gets there fails
 * the test. The compliance workflow answers `status` only once its first activities are done.
 */
async function statusWhen(handle: WorkflowHandle, what: string, done: (status: InvestigationStatus) => boolean): Promise<InvestigationStatus> {
  let last: InvestigationStatus | undefined;
  for (let attempt = 0; attempt < 300; attempt += 1) {
    try {
      last = await handle.query(statusQuery);
      if (done(last)) return last;
    } catch (error) {
      if (!(error instanceof QueryNotRegisteredError)) throw error;
    }
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}; last status: ${JSON.stringify(last)}`);
}

const malicious = (input: RunEngineInput) => engineReport(input, {
  taxonomies: [{ level: 'malicious', namespace: 'Test', predicate: input.engine, value: 'known bad' }],
});

const blockMalicious = (expiry: number): Policy => ({
  rules: [{ name: 'block-malicious', when: { verdict: 'malicious' }, respond: [RESPONDER], approval: 'required', expiry }],
});

const pendingResponse = (status: InvestigationStatus) => status.responses.some((response) => response.approval.state === 'pending');

describe('the investigation workflow, phase by phase, against stand-in activities', () => {
  it('fails an investigation no engine applies to, listing why, and still notifies every target, recording a failed one', async () => {
    const notified: Array<{ target: string; report: InvestigationReport }> = [];
    await withWorkers({
      plan: () => ({ jobs: [], errors: ['no engine accepts domain (fileinfo: file)'] }),
      targets: [{ name: 'webhook', kind: 'webhook', url: 'http://127.0.0.1:9/ok' }, { name: 'webhook down', kind: 'webhook', url: 'http://127.0.0.1:9/down' }],
      notify: (target, report) => {
        if (target.name === 'webhook down') throw ApplicationFailure.nonRetryable('the receiver answered 503');
        notified.push({ target: target.name, report });
      },
    }, async ({ start }) => {
      const handle = await start({ observables: [domain('nothing-applies.example')] });
      const report = await handle.result();
      expect(report).toMatchObject({ status: 'Fail', jobs: [], responses: [], errors: ['no engine accepts domain (fileinfo: file)'] });
      expect(report.observables).toEqual([domain('nothing-applies.example')]);
      expect(report.notifications).toEqual([
        { target: 'webhook', state: 'sent' },
        { target: 'webhook down', state: 'failed', detail: 'the receiver answered 503' },
      ]);
      expect(notified.map((entry) => [entry.target, entry.report.status])).toEqual([['webhook', 'Fail']]);
      expect((await handle.describe()).memo).toMatchObject({ phase: 'done' });
    });
  });

  it('extracts the observables written in the text and analyzes each once, even when given twice', async () => {
    await withWorkers({ engines: { [ANALYZER]: (input) => engineReport(input) } }, async ({ start, calls }) => {
      const report = await (await start({ text: 'seen at evil[.]com and hxxp://evil[.]com/x', observables: [domain('evil.com')] })).result();
      expect(report.status).toBe('Success');
      expect(report.observables.map((o) => `${o.type}:${o.data}`)).toEqual(['domain:evil.com', 'url:http://evil.com/x']);
      expect(calls.get(ANALYZER)!.map((input) => subjectKey(input.subject)).sort()).toEqual(['domain:evil.com', 'url:http://evil.com/x']);
    });
  });

  it('finds an observable one engine reports malicious malicious, holds the policy\'s response pending, and runs the responder once when approved', async () => {
    await withWorkers({
      engines: { [ANALYZER]: malicious, [RESPONDER]: (input) => engineReport(input, { summary: 'blocked' }) },
      policy: blockMalicious(600_000),
    }, async ({ start, calls }) => {
      const handle = await start({ observables: [domain('evil.example')] });
      const waiting = await statusWhen(handle, 'a pending response', pendingResponse);
      expect(waiting).toMatchObject({
        phase: 'responding',
        jobs: [{ engine: ANALYZER, subject: 'domain evil.example', state: 'success' }],
        verdicts: { overall: 'malicious', bySubject: { 'domain:evil.example': 'malicious' } },
        responses: [{ id: 'r1', responder: RESPONDER, rule: 'block-malicious', observable: domain('evil.example'), approval: { state: 'pending' } }],
      });
      expect((await handle.describe()).typedSearchAttributes.get(verdictKey)).toBe('malicious');
      expect(calls.get(RESPONDER)).toEqual([]);

      const decided = await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', reason: 'confirmed' }] });
      expect(decided.map((response) => response.approval.state)).toEqual(['approved']);
      const report = await handle.result();
      expect(report.status).toBe('Success');
      expect(report.responses).toMatchObject([{ id: 'r1', approval: { state: 'approved', by: 'bob', reason: 'confirmed' }, report: { engine: RESPONDER, summary: 'blocked' } }]);
      expect(calls.get(RESPONDER)!.map((input) => input.subject)).toEqual([{ kind: 'observable', observable: domain('evil.example') }]);
      expect(calls.get(RESPONDER)![0].parameters).toMatchObject({ idempotency_key: expect.stringContaining(`${handle.workflowId}/`) });
    });
  });

  it('never runs the responder when the response is rejected, and records who rejected it', async () => {
    await withWorkers({ engines: { [ANALYZER]: malicious, [RESPONDER]: (input) => engineReport(input) }, policy: blockMalicious(600_000) }, async ({ start, calls }) => {
      const handle = await start({ observables: [domain('evil.example')] });
      await statusWhen(handle, 'a pending response', pendingResponse);
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'carol', reason: 'a partner domain' }] });
      const report = await handle.result();
      expect(report.responses).toMatchObject([{ approval: { state: 'rejected', by: 'carol', reason: 'a partner domain' } }]);
      expect(report.responses[0].report).toBeUndefined();
      expect(calls.get(RESPONDER)).toEqual([]);
    });
  });

  it('never runs the responder when nobody approves before the expiry', async () => {
    await withWorkers({ engines: { [ANALYZER]: malicious, [RESPONDER]: (input) => engineReport(input) }, policy: blockMalicious(1_000) }, async ({ start, calls }) => {
      const report = await (await start({ observables: [domain('evil.example')] })).result();
      expect(report.responses).toMatchObject([{ approval: { state: 'expired' } }]);
      expect(calls.get(RESPONDER)).toEqual([]);
    });
  });

  it('cancelled while a response waits for approval: expires it, runs no responder, fails, and still notifies', async () => {
    const notified: InvestigationReport[] = [];
    await withWorkers({
      engines: { [ANALYZER]: malicious, [RESPONDER]: (input) => engineReport(input) },
      policy: blockMalicious(600_000),
      targets: [{ name: 'webhook', kind: 'webhook', url: 'http://127.0.0.1:9/ok' }],
      notify: (_target, report) => notified.push(report),
    }, async ({ start, calls }) => {
      const handle = await start({ observables: [domain('evil.example')] });
      await statusWhen(handle, 'a pending response', pendingResponse);
      await handle.signal(cancelSignal, { by: 'dave', reason: 'duplicate of another case' });
      const report = await handle.result();
      expect(report).toMatchObject({
        status: 'Fail', cancelled: true,
        responses: [{ approval: { state: 'expired', reason: 'investigation cancelled' } }],
        notifications: [{ target: 'webhook', state: 'sent' }],
      });
      expect(report.errors).toContain('cancelled by dave: duplicate of another case');
      expect(calls.get(RESPONDER)).toEqual([]);
      expect(notified.map((sent) => sent.cancelled)).toEqual([true]);
    });
  });

  it('analyzes what artifacts reveal round by round, down to the input\'s depth and no further', async () => {
    const chain: Record<string, string> = { 'a.example': 'b.example', 'b.example': 'c.example', 'c.example': 'd.example' };
    const revealing = (input: RunEngineInput) => engineReport(input, { artifacts: [{ ...domain(chain[dataOf(input.subject)]), message: 'resolves to' }] });
    await withWorkers({ engines: { [ANALYZER]: revealing } }, async ({ start, calls }) => {
      const report = await (await start({ observables: [domain('a.example')], depth: 2 })).result();
      expect(calls.get(ANALYZER)!.map((input) => dataOf(input.subject))).toEqual(['a.example', 'b.example', 'c.example']);
      expect(report.observables.map((o) => o.data)).toEqual(['a.example', 'b.example', 'c.example']);
    });
  });

  it('analyzes each subject once when artifacts point back at one already seen', async () => {
    const back: Record<string, string[]> = { 'a.example': ['b.example', 'a.example'], 'b.example': ['a.example', 'b.example'] };
    const looping = (input: RunEngineInput) => engineReport(input, { artifacts: back[dataOf(input.subject)].map(domain) });
    await withWorkers({ engines: { [ANALYZER]: looping } }, async ({ start, calls }) => {
      const report = await (await start({ observables: [domain('a.example')], depth: 5 })).result();
      expect(report.status).toBe('Success');
      expect(calls.get(ANALYZER)!.map((input) => dataOf(input.subject))).toEqual(['a.example', 'b.example']);
    });
  });

  it('runs at most 200 engine jobs per investigation across rounds, and says how many were left out', async () => {
    const copies = (subject: Subject, count: number) => Array.from({ length: count }, () => job(subject));
    await withWorkers({
      plan: (subjects) => ({ jobs: subjects.flatMap((subject) => copies(subject, dataOf(subject) === 'a.example' ? 150 : 100)) }),
      engines: { [ANALYZER]: (input) => engineReport(input, { artifacts: [domain('b.example')] }) },
    }, async ({ start, calls }) => {
      const report = await (await start({ observables: [domain('a.example')], depth: 1 })).result();
      expect(report.jobs).toHaveLength(200);
      expect(calls.get(ANALYZER)).toHaveLength(200);
      expect(report.jobs.filter((done) => dataOf(done.subject) === 'b.example')).toHaveLength(50);
      expect(report.errors).toEqual(['only 200 engine jobs run per investigation; 50 were left out']);
    });
  });

  it('stores a report too large for history as a blob and returns a trimmed copy that refers to it', async () => {
    const stored: InvestigationReport[] = [];
    const reportRef: BlobRef = { sha256: 'a'.repeat(64), size: 1, filename: 'report.json', contentType: 'application/json' };
    const bulky = (input: RunEngineInput) => engineReport(input, {
      artifacts: Array.from({ length: 60 }, (_, index) => ({ type: 'other', data: `${index}:${'x'.repeat(4_000)}` })),
    });
    const observables = [domain('big.example'), ...Array.from({ length: 60 }, (_, index) => ({ type: 'other' as const, data: `note ${index}` }))];
    await withWorkers({
      plan: (subjects) => ({ jobs: subjects.filter((subject) => dataOf(subject) === 'big.example').map((subject) => job(subject)) }),
      engines: { [ANALYZER]: bulky },
      storeReport: (report) => {
        stored.push(report);
        return reportRef;
      },
    }, async ({ start }) => {
      const report = await (await start({ observables, depth: 0 })).result();
      expect(report.reportRef).toEqual(reportRef);
      expect(report.jobs.map((done) => done.artifacts)).toEqual([[]]);
      expect(report.observables).toHaveLength(50);
      expect(stored).toHaveLength(1);
      expect(stored[0].jobs[0].artifacts).toHaveLength(60);
      expect(stored[0].observables).toHaveLength(61);
    });
  });
});

describe('the compliance workflow, bot by bot, against stand-in activities', () => {
  const GATED = 'gated_bot';
  const OPEN = 'open_bot';
  const finding = ComplianceFinding.parse({
    reportTime: '2026-01-01T00:00:00Z',
    status: 'Failed',
    rule: { name: 'S3 bucket is public', complianceTags: `AUTO: ${GATED} private|AUTO: ${OPEN} owner=sec|AUTO: ghost_bot` },
    account: { id: '123456789012' },
    entity: { id: 'bucket-1', name: 'bucket-1', region: 'eu-west-1' },
  });
  const input: ComplianceInput = {
    finding, accountId: '123456789012', region: 'eu-west-1', env: {},
    actions: [{ bot: GATED, params: ['private'], known: true }, { bot: OPEN, params: ['owner=sec'], known: true }, { bot: 'ghost_bot', params: [], known: false }],
  };
  const standIns = (): StandIns => ({
    engines: { [GATED]: (run) => engineReport(run, { summary: 'made private' }), [OPEN]: (run) => engineReport(run, { summary: 'tagged' }) },
    policy: { rules: [{ name: 'gate-gated', when: {}, respond: [GATED], approval: 'required', expiry: 600_000 }] },
    targets: [{ name: 'webhook', kind: 'webhook', url: 'http://127.0.0.1:9/ok' }],
  });

  it('holds a bot the policy gates until approved, then runs the bots in turn and reports an unknown one', async () => {
    await withWorkers(standIns(), async ({ startCompliance, calls }) => {
      const handle = await startCompliance(input);
      const waiting = await statusWhen(handle, 'the gated bot pending', pendingResponse);
      expect(waiting).toMatchObject({ phase: 'responding', responses: [{ id: 'r1', responder: GATED, rule: 'gate-gated', approval: { state: 'pending' } }] });
      expect([calls.get(GATED), calls.get(OPEN)]).toEqual([[], []]);

      await handle.executeUpdate(approveUpdate, { args: [{ by: 'erin' }] });
      const report = await handle.result();
      expect(report.bots.map((bot) => [bot.bot, bot.outcome])).toEqual([[GATED, 'passed'], [OPEN, 'passed'], ['ghost_bot', 'failed']]);
      expect(report.bots[2].message).toContain('unknown bot ghost_bot');
      expect(report.status).toBe('Fail');
      expect(report.notifications).toEqual(Array(3).fill({ target: 'webhook', state: 'sent' }));
      expect(calls.get(GATED)).toHaveLength(1);
      expect(calls.get(GATED)![0].parameters).toMatchObject({
        bot: GATED, params: ['private'], finding_key: handle.workflowId, idempotency_key: botJobId(handle.workflowId, 0, GATED),
      });
    });
  });

  it('runs no gated bot that is rejected, says who rejected it, and still runs the next bot', async () => {
    await withWorkers(standIns(), async ({ startCompliance, calls }) => {
      const handle = await startCompliance(input);
      await statusWhen(handle, 'the gated bot pending', pendingResponse);
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'erin', reason: 'a public website' }] });
      const report = await handle.result();
      expect(report.bots[0]).toMatchObject({
        bot: GATED, outcome: 'failed', message: 'not run: the policy (gate-gated) requires approval and erin rejected it (a public website)',
      });
      expect(report.bots[1]).toMatchObject({ bot: OPEN, outcome: 'passed', message: 'tagged' });
      expect(calls.get(GATED)).toEqual([]);
      expect(calls.get(OPEN)).toHaveLength(1);
    });
  });
});
