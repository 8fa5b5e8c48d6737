import {
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { InvestigationActivities, NotificationTarget } from '../activities/investigation-activities';
import { ObservableType } from '../core/engine-manifest';
import {
  describeSubject,
  type EngineJobState,
  type EngineReport,
  type InvestigationInput,
  type InvestigationPhase,
  type InvestigationReport,
  type InvestigationStatus,
  MAX_INLINE_ARTIFACTS,
  MAX_REPORT_BYTES,
  type NotificationRecord,
  type Observable,
  type ResponseRecord,
  type SkippedEngineJob,
  type Subject,
  subjectKey,
} from '../core/investigation';
import { type ObservableIndex, observableIndex } from '../core/observable-index';
import { extractObservables } from '../core/observables';
import { markingReason, type PlannedJob, subjectsOf } from '../core/plan';
import { evaluatePolicy, type PlannedResponse, type PolicyFacts, requestedResponses } from '../core/policy';
import { aggregateVerdicts, verdictOf } from '../core/verdict';
import {
  addObservablesSignal, type CancelRequest, cancelSignal, enginesKey, observablesKey, observableTypesKey, reportQuery, responseIdempotencyKey, statusQuery,
  verdictKey,
} from '../contract/messages';
import { approved, handleApprovals } from './approvals';
import { runEngineJob } from './engine-job';
import { notifyAll } from './notify';

/** Engine jobs of one investigation that run at once; each engine worker bounds its own concurrency too. */
const PARALLEL_JOBS = 8;
/** Progress edits (a Slack message) at most this often. */
const PROGRESS_EVERY_MS = 2_000;
/** Observables that analyzers' artifacts may add to one investigation. */
const MAX_ARTIFACT_SUBJECTS = 50;
/** Engine jobs one investigation may run, which keeps its report small (claim check). */
const MAX_JOBS = 200;

const activities = proxyActivities<InvestigationActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});
const progressActivities = proxyActivities<InvestigationActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { maximumAttempts: 2 },
});
/**
 * The light steps (where to report, what to run, the policy) read only the worker's own files and
 * config, so they run as local activities inside the workflow task that asks for them: an
 * investigation in which no engine applies finishes in one workflow task instead of four. Histories
 * recorded before this patch scheduled them as activities and replay that way.
 */
const LIGHT_STEPS_PATCH = 'light-steps-local';
const localActivities = proxyLocalActivities<InvestigationActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});
const lightSteps = () => (patched(LIGHT_STEPS_PATCH) ? localActivities : activities);

/**
 * One investigation, whatever started it: parse the input into observables, analyze each with the
 * engines that apply (and what their artifacts reveal, to a bounded depth), aggregate the verdict,
 * run the responders the policy selects (after a person approves, where required), and notify.
 *
 * The state lives in an `Investigation`; the handlers only call its methods, so what a query sees
 * and what a phase changes are the same fields.
 */
export async function investigation(input: InvestigationInput): Promise<InvestigationReport> {
  const run = new Investigation(input);
  setHandler(statusQuery, () => run.status());
  setHandler(reportQuery, () => run.report());
  setHandler(cancelSignal, (request) => run.cancel(request));
  setHandler(addObservablesSignal, (added) => run.addObservables(added));
  handleApprovals(run.responses, () => run.touch());
  return run.run();
}

interface JobEntry {
  job: PlannedJob;
  state: EngineJobState;
  report?: EngineReport;
}

/**
 * The state of one investigation and its phases. The order of the Temporal commands its phases
 * issue is recorded in every history (test/fixtures/histories): a change to it must replay them.
 */
class Investigation {
  readonly responses: ResponseRecord[] = [];
  private readonly id: string;
  private readonly runId: string;
  private readonly startedAt = new Date().toISOString();
  private phase: InvestigationPhase = 'received';
  private readonly jobs: JobEntry[] = [];
  /** Engines the plan did not run (TLP, PAP, file type): listed, never failed, and no Temporal command. */
  private readonly skipped: SkippedEngineJob[] = [];
  private readonly notified: NotificationRecord[] = [];
  private readonly errors: string[] = [];
  /** Subject keys ever admitted, so an artifact that points back at an earlier subject is not analyzed again. */
  private readonly seen = new Set<string>();
  /** Subjects admitted and not yet planned: the next round of analysis. */
  private readonly queued: Subject[] = [];
  /** Every observable admitted, as it came (with its tags, which the policy may match on). */
  private readonly observed: Observable[] = [];
  /** Every subject admitted, in order: what "seen before" searches find this investigation by. */
  private readonly analyzed: Subject[] = [];
  /** What DocketObservables last held, of how many values. */
  private index: ObservableIndex | undefined;
  /** The observables the requester gave (or wrote in the text): what responders asked for by name act on. */
  private given: Observable[] = [];
  private artifactsAdmitted = 0;
  private cancelled: CancelRequest | undefined;
  /** Everything that a cancel request stops; reporting runs outside it. */
  private readonly scope = new CancellationScope();
  /** Set when something a progress message shows has changed since the last edit. */
  private changed = false;
  private finished = false;

  constructor(private readonly input: InvestigationInput) {
    ({ workflowId: this.id, runId: this.runId } = workflowInfo());
  }

  async run(): Promise<InvestigationReport> {
    const targets = await lightSteps().notificationTargets(this.input);
    const progress = this.showProgress(targets);
    try {
      await this.scope.run(async () => {
        this.parse();
        await this.analyze();
        this.verdict();
        await this.respond();
      });
    } catch (error) {
      if (!isCancellation(error)) throw error;
      this.settleCancellation();
    }
    // Reporting must happen even after a cancellation.
    this.finished = true;
    await CancellationScope.nonCancellable(async () => {
      await progress;
      await this.notify(targets);
    });
    this.enter('done');
    return claimCheck(this.report());
  }

  /** Phase 1: the observables of the input (given, written in the text, or files), admitted once each. */
  parse(): void {
    this.enter('parsing');
    const { input } = this;
    const extracted = input.text ? extractObservables(input.text, { dropPrivate: input.dropPrivate }) : [];
    this.admit(subjectsOf({ files: input.files, observables: [...input.observables, ...extracted] }));
    this.given = [...this.observed];
    upsertSearchAttributes(this.indexAttributes());
  }

  /**
   * Phase 2: rounds of engine jobs, each on what the round before revealed, until nothing new is
   * queued or the input's depth is reached. `seen` keeps artifacts from looping back.
   */
  async analyze(): Promise<void> {
    this.enter('analyzing');
    for (let depth = 0; this.queued.length; depth += 1) {
      const added = await this.analyzeRound(this.queued.splice(0, this.queued.length));
      if (depth >= this.input.depth) break;
      this.admitArtifacts(added);
    }
  }

  /** Phase 3: the worst level per observable and overall, made searchable. */
  verdict(): void {
    upsertSearchAttributes({ [verdictKey.name]: [this.verdicts().overall], ...this.indexAttributes() });
  }

  /** Phase 4: the responses the policy selects and those asked for by name, each after its approval. */
  async respond(): Promise<void> {
    this.enter('responding');
    const policy = await lightSteps().loadPolicy();
    const planned = evaluatePolicy(policy, this.observed.map((observable) => this.policyFacts(observable)));
    // Only inputs that carry `respond` take this path, so histories recorded before it replay unchanged.
    if (this.input.respond?.length) {
      const responders = await activities.describeResponders(this.input.respond);
      const requested = requestedResponses(policy, responders, this.given, this.input.requester, planned, this.input.object);
      this.errors.push(...requested.errors);
      planned.push(...requested.planned);
    }
    await Promise.all(planned.map((plan, index) => this.runResponse(plan, index)));
  }

  /** Phase 5: the report to every target; failures are recorded in it, never fatal. */
  async notify(targets: NotificationTarget[]): Promise<void> {
    this.enter('notifying');
    await notifyAll(targets, () => this.report(), this.notified);
  }

  status(): InvestigationStatus {
    const skipped = this.skipped.map((job): EngineJobState => ({ engine: job.engine, subject: describeSubject(job.subject), state: 'skipped', reason: job.reason }));
    return { id: this.id, phase: this.phase, jobs: [...this.jobs.map((entry) => entry.state), ...skipped], verdicts: this.verdicts(), responses: this.responses };
  }

  report(): InvestigationReport {
    const done = this.reports();
    // A request only for responders runs no analyzer, and is not a failure for it.
    // Skipped jobs fail nothing; an investigation in which no engine ran at all still did not do its work.
    const failed = this.cancelled !== undefined || (!done.length && !this.responses.length) || done.some((r) => r.status !== 'success')
      || this.responses.some((r) => r.report && r.report.status !== 'success');
    return {
      id: this.id, status: failed ? 'Fail' : 'Success', source: this.input.source, startedAt: this.startedAt, finishedAt: new Date().toISOString(),
      observables: this.observed, jobs: done, verdicts: this.verdicts(), responses: this.responses, notifications: this.notified,
      cancelled: this.cancelled ? true : undefined, errors: this.errors, skipped: this.skipped.length ? this.skipped : undefined,
      observablesIndexed: this.indexedCount(),
    };
  }

  cancel(request: CancelRequest): void {
    this.cancelled = request;
    this.scope.cancel();
  }

  addObservables(added: Observable[]): void {
    this.admit(added.map((observable): Subject => ({ kind: 'observable', observable })));
  }

  /** Marks the progress message as stale (an approval decided, a job moved on). */
  touch(): void {
    this.changed = true;
  }

  private enter(next: InvestigationPhase): void {
    this.phase = next;
    this.changed = true;
    upsertMemo({ phase: next, ...(this.index ? { observablesIndexed: this.indexedCount() } : {}) });
  }

  /**
   * DocketObservables and DocketObservableTypes for every subject admitted so far. Only upserts that
   * histories already hold carry them: a new upsert would be a new command (docs/architecture.md).
   */
  private indexAttributes(): Record<string, string[]> {
    this.index = observableIndex(this.analyzed);
    return { [observablesKey.name]: this.index.values, [observableTypesKey.name]: this.index.types };
  }

  private indexedCount(): InvestigationReport['observablesIndexed'] {
    return this.index && { indexed: this.index.indexed, of: this.index.of };
  }

  private admit(subjects: Subject[]): void {
    for (const subject of subjects) {
      const key = subjectKey(subject);
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.queued.push(subject);
      this.analyzed.push(subject);
      if (subject.kind === 'observable') this.observed.push(subject.observable);
    }
  }

  /** Plans one round and runs its jobs, at most MAX_JOBS over the whole investigation; answers the jobs it ran. */
  private async analyzeRound(round: Subject[]): Promise<JobEntry[]> {
    const plan = await lightSteps().planInvestigation(this.id, { ...this.input, files: [], observables: [] }, round);
    this.errors.push(...plan.errors.filter((error) => !this.errors.includes(error)));
    this.skip(plan.skipped ?? []);
    const room = Math.max(0, MAX_JOBS - this.jobs.length);
    if (plan.jobs.length > room) this.errors.push(`only ${MAX_JOBS} engine jobs run per investigation; ${plan.jobs.length - room} were left out`);
    const added = plan.jobs.slice(0, room).map((job): JobEntry => ({ job, state: { engine: job.engine, subject: describeSubject(job.subject), state: 'queued' } }));
    this.jobs.push(...added);
    // Artifacts admitted after the last round are indexed here, in the upsert each round already made.
    upsertSearchAttributes({ [enginesKey.name]: [...new Set(this.jobs.map((entry) => entry.job.engine))], ...this.indexAttributes() });
    await runPool(added, (entry) => this.runJob(entry, plan.queuePrefix));
    return added;
  }

  private async runJob(entry: JobEntry, queuePrefix: string): Promise<void> {
    entry.state.state = 'running';
    this.changed = true;
    entry.report = await runEngineJob(this.id, this.runId, entry.job, this.input, queuePrefix);
    entry.state = { ...entry.state, state: entry.report.status, cached: entry.report.cached };
    this.changed = true;
    upsertMemo({ finishedJobs: this.jobs.filter((j) => j.report).length });
  }

  /** Lists engines the plan did not run, at most MAX_JOBS of them, which keeps the report small. */
  private skip(skipped: SkippedEngineJob[]): void {
    const room = Math.max(0, MAX_JOBS - this.skipped.length);
    this.skipped.push(...skipped.slice(0, room));
    if (skipped.length > room) this.errors.push(`${skipped.length - room} more skipped engine job(s) are not listed`);
    if (skipped.length) this.changed = true;
  }

  /** Queues what the jobs' artifacts name and was never seen, up to MAX_ARTIFACT_SUBJECTS per investigation. */
  private admitArtifacts(entries: JobEntry[]): void {
    for (const entry of entries) {
      for (const artifact of entry.report?.artifacts ?? []) {
        if (this.artifactsAdmitted >= MAX_ARTIFACT_SUBJECTS) return;
        const subject = artifactSubject(artifact);
        if (!subject || this.seen.has(subjectKey(subject))) continue;
        this.artifactsAdmitted += 1;
        this.admit([subject]);
      }
    }
  }

  private policyFacts(observable: Observable): PolicyFacts {
    const key = subjectKey({ kind: 'observable', observable });
    const about = this.reports().filter((r) => subjectKey(r.subject) === key);
    return {
      observable,
      verdict: verdictOf(about.flatMap((r) => r.taxonomies)),
      engines: about.filter((r) => r.taxonomies.length).map((r) => r.engine),
    };
  }

  /** One response: recorded at once (so status shows it pending), then run once approved or when no approval is needed. */
  private async runResponse(plan: PlannedResponse, index: number): Promise<void> {
    const record: ResponseRecord = {
      id: `r${index + 1}`, responder: plan.responder, observable: plan.observable, rule: plan.rule,
      approval: plan.approval === 'required'
        ? { state: 'pending', expiresAt: new Date(Date.now() + plan.expiryMs).toISOString() }
        : { state: 'not-required' },
    };
    if (plan.object) record.object = plan.object;
    this.responses.push(record);
    this.changed = true;
    if (plan.approval === 'required') {
      const go = await approved(record, plan.expiryMs);
      this.changed = true;
      if (!go) return;
    }
    const responder = await activities.responderSettings(plan.responder);
    if (!responder) {
      this.errors.push(`the policy names responder ${plan.responder}, which is not declared`);
      return;
    }
    // Only settings that carry maxTlp/maxPap can refuse, so histories recorded before them replay unchanged.
    const refused = markingReason(responder, this.input);
    if (refused) {
      record.skipped = refused;
      this.changed = true;
      return;
    }
    const subject: Subject = plan.object ? { kind: 'object', object: plan.object } : { kind: 'observable', observable: plan.observable };
    const key = responseIdempotencyKey(this.id, this.runId, record.id, plan.responder);
    record.report = await runEngineJob(this.id, this.runId, { ...responder, subject }, this.input, responder.queuePrefix, key);
  }

  private settleCancellation(): void {
    this.cancelled ??= { by: 'temporal', reason: 'the workflow was cancelled' };
    this.errors.push(`cancelled by ${this.cancelled.by}${this.cancelled.reason ? `: ${this.cancelled.reason}` : ''}`);
    for (const response of this.responses) {
      if (response.approval.state === 'pending') response.approval = { ...response.approval, state: 'expired', reason: 'investigation cancelled' };
    }
  }

  /**
   * Live progress for Slack targets: one edit per change, at most every PROGRESS_EVERY_MS. It runs
   * beside the phases and outside their scope, so a cancellation still gets its last edit.
   */
  private showProgress(targets: NotificationTarget[]): Promise<void> {
    const live = targets.filter((target) => target.kind === 'slack' && !target.refused);
    if (!live.length) return Promise.resolve();
    return CancellationScope.nonCancellable(async () => {
      while (!this.finished) {
        await condition(() => this.changed || this.finished);
        if (this.finished) return;
        this.changed = false;
        for (const target of live) {
          // The message the first update posted (when the request named no message of Docket's): edited from then on.
          const posted = await progressActivities.progress(target, this.status()).catch(() => undefined);
          if (posted) target.message = posted;
        }
        await sleep(PROGRESS_EVERY_MS);
      }
    });
  }

  private reports(): EngineReport[] {
    return this.jobs.flatMap((entry) => (entry.report ? [entry.report] : []));
  }

  private verdicts(): InvestigationReport['verdicts'] {
    return aggregateVerdicts(this.reports().map((report) => ({ subjectKey: subjectKey(report.subject), taxonomies: report.taxonomies })));
  }
}

/** A report too large for history is stored whole as a blob; history keeps a copy without artifacts. */
async function claimCheck(full: InvestigationReport): Promise<InvestigationReport> {
  if (JSON.stringify(full).length <= MAX_REPORT_BYTES) return full;
  const reportRef = await activities.storeReport(full);
  return {
    ...full,
    jobs: full.jobs.map((job) => ({ ...job, artifacts: [] })),
    observables: full.observables.slice(0, MAX_INLINE_ARTIFACTS),
    reportRef,
  };
}

async function runPool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_JOBS, items.length) }, lane));
}

function artifactSubject(artifact: EngineReport['artifacts'][number]): Subject | undefined {
  if (artifact.file) return { kind: 'file', file: artifact.file };
  const type = ObservableType.safeParse(artifact.type);
  if (!type.success || !artifact.data || type.data === 'file') return undefined;
  return { kind: 'observable', observable: { type: type.data, data: artifact.data, tags: artifact.tags } };
}
