import {
  CancellationScope,
  condition,
  isCancellation,
  proxyActivities,
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
  type Subject,
  subjectKey,
} from '../core/investigation';
import { extractObservables } from '../core/observables';
import { type PlannedJob, subjectsOf } from '../core/plan';
import { evaluatePolicy, requestedResponses } from '../core/policy';
import { aggregateVerdicts, verdictOf } from '../core/verdict';
import {
  addObservablesSignal, cancelSignal, enginesKey, observableTypesKey, reportQuery, responseIdempotencyKey, statusQuery, verdictKey,
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
 * One investigation, whatever started it: parse the input into observables, analyze each with the
 * engines that apply (and what their artifacts reveal, to a bounded depth), aggregate the verdict,
 * run the responders the policy selects (after a person approves, where required), and notify.
 */
export async function investigation(input: InvestigationInput): Promise<InvestigationReport> {
  const { workflowId: id, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  let phase: InvestigationPhase = 'received';
  const jobs: JobEntry[] = [];
  const responses: ResponseRecord[] = [];
  const notified: NotificationRecord[] = [];
  const errors: string[] = [];
  const seen = new Set<string>();
  const queued: Subject[] = [];
  // Every observable admitted, as it came (with its tags, which the policy may match on).
  const observed: Observable[] = [];
  // The observables the requester gave (or wrote in the text): what responders asked for by name act on.
  let given: Observable[] = [];
  let cancelled: { by: string; reason?: string } | undefined;
  const scope = new CancellationScope();

  const reports = () => jobs.flatMap((entry) => (entry.report ? [entry.report] : []));
  const verdicts = () => aggregateVerdicts(reports().map((report) => ({ subjectKey: subjectKey(report.subject), taxonomies: report.taxonomies })));
  const report = (): InvestigationReport => {
    const done = reports();
    // A request only for responders runs no analyzer, and is not a failure for it.
    const failed = cancelled !== undefined || (!done.length && !responses.length) || done.some((r) => r.status !== 'success')
      || responses.some((r) => r.report && r.report.status !== 'success');
    return {
      id, status: failed ? 'Fail' : 'Success', source: input.source, startedAt, finishedAt: new Date().toISOString(),
      observables: observed, jobs: done, verdicts: verdicts(), responses, notifications: notified,
      cancelled: cancelled ? true : undefined, errors,
    };
  };
  let changed = false;
  let finished = false;
  const enter = (next: InvestigationPhase) => {
    phase = next;
    changed = true;
    upsertMemo({ phase });
  };
  const status = (): InvestigationStatus => ({ id, phase, jobs: jobs.map((entry) => entry.state), verdicts: verdicts(), responses });
  // One edit per change, at most every PROGRESS_EVERY_MS, for targets that show live progress.
  const showProgress = async (targets: NotificationTarget[]) => {
    while (!finished) {
      await condition(() => changed || finished);
      if (finished) return;
      changed = false;
      for (const target of targets) {
        // The message the first update posted (when the request named no message of Docket's): edited from then on.
        const posted = await progressActivities.progress(target, status()).catch(() => undefined);
        if (posted) target.message = posted;
      }
      await sleep(PROGRESS_EVERY_MS);
    }
  };
  const admit = (subjects: Subject[]) => {
    for (const subject of subjects) {
      const key = subjectKey(subject);
      if (seen.has(key)) continue;
      seen.add(key);
      queued.push(subject);
      if (subject.kind === 'observable') observed.push(subject.observable);
    }
  };

  setHandler(statusQuery, status);
  setHandler(reportQuery, report);
  setHandler(cancelSignal, (who) => {
    cancelled = who;
    scope.cancel();
  });
  setHandler(addObservablesSignal, (added) => admit(added.map((observable) => ({ kind: 'observable', observable }))));
  handleApprovals(responses, () => {
    changed = true;
  });

  const targets = await activities.notificationTargets(input);
  const live = targets.filter((target) => target.kind === 'slack' && !target.refused);
  const progress = live.length ? CancellationScope.nonCancellable(() => showProgress(live)) : Promise.resolve();
  try {
    await scope.run(async () => {
      enter('parsing');
      const extracted = input.text ? extractObservables(input.text, { dropPrivate: input.dropPrivate }) : [];
      admit(subjectsOf({ files: input.files, observables: [...input.observables, ...extracted] }));
      given = [...observed];
      upsertSearchAttributes({ [observableTypesKey.name]: [...new Set([...(input.files.length ? ['file'] : []), ...observed.map((o) => o.type)])] });

      enter('analyzing');
      let artifactsAdmitted = 0;
      for (let depth = 0; queued.length; depth += 1) {
        const round = queued.splice(0, queued.length);
        const plan = await activities.planInvestigation(id, { ...input, files: [], observables: [] }, round);
        errors.push(...plan.errors.filter((error) => !errors.includes(error)));
        const room = Math.max(0, MAX_JOBS - jobs.length);
        if (plan.jobs.length > room) errors.push(`only ${MAX_JOBS} engine jobs run per investigation; ${plan.jobs.length - room} were left out`);
        const added = plan.jobs.slice(0, room).map((job): JobEntry => ({ job, state: { engine: job.engine, subject: describeSubject(job.subject), state: 'queued' } }));
        jobs.push(...added);
        upsertSearchAttributes({ [enginesKey.name]: [...new Set(jobs.map((entry) => entry.job.engine))] });
        await runPool(added, async (entry) => {
          entry.state.state = 'running';
          changed = true;
          entry.report = await runEngineJob(id, runId, entry.job, input, plan.queuePrefix);
          entry.state = { ...entry.state, state: entry.report.status, cached: entry.report.cached };
          changed = true;
          upsertMemo({ finishedJobs: jobs.filter((j) => j.report).length });
        });
        if (depth >= input.depth) break;
        for (const entry of added) {
          for (const artifact of entry.report?.artifacts ?? []) {
            if (artifactsAdmitted >= MAX_ARTIFACT_SUBJECTS) break;
            const subject = artifactSubject(artifact);
            if (!subject || seen.has(subjectKey(subject))) continue;
            artifactsAdmitted += 1;
            admit([subject]);
          }
        }
      }

      const overall = verdicts();
      upsertSearchAttributes({ [verdictKey.name]: [overall.overall] });
      enter('responding');
      const policy = await activities.loadPolicy();
      const planned = evaluatePolicy(policy, observed.map((observable) => {
        const about = reports().filter((r) => subjectKey(r.subject) === subjectKey({ kind: 'observable', observable }));
        return {
          observable,
          verdict: verdictOf(about.flatMap((r) => r.taxonomies)),
          engines: about.filter((r) => r.taxonomies.length).map((r) => r.engine),
        };
      }));
      // Only inputs that carry `respond` take this path, so histories recorded before it replay unchanged.
      if (input.respond?.length) {
        const requested = requestedResponses(policy, await activities.describeResponders(input.respond), given, input.requester, planned);
        errors.push(...requested.errors);
        planned.push(...requested.planned);
      }
      await Promise.all(planned.map(async (plan, index) => {
        const record: ResponseRecord = {
          id: `r${index + 1}`, responder: plan.responder, observable: plan.observable, rule: plan.rule,
          approval: plan.approval === 'required'
            ? { state: 'pending', expiresAt: new Date(Date.now() + plan.expiryMs).toISOString() }
            : { state: 'not-required' },
        };
        responses.push(record);
        changed = true;
        if (plan.approval === 'required') {
          const go = await approved(record, plan.expiryMs);
          changed = true;
          if (!go) return;
        }
        const responder = await activities.responderSettings(plan.responder);
        if (!responder) {
          errors.push(`the policy names responder ${plan.responder}, which is not declared`);
          return;
        }
        const subject: Subject = { kind: 'observable', observable: plan.observable };
        record.report = await runEngineJob(id, runId, { ...responder, subject }, input, responder.queuePrefix, responseIdempotencyKey(id, runId, record.id, plan.responder));
      }));
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
    cancelled ??= { by: 'temporal', reason: 'the workflow was cancelled' };
    errors.push(`cancelled by ${cancelled.by}${cancelled.reason ? `: ${cancelled.reason}` : ''}`);
    for (const response of responses) {
      if (response.approval.state === 'pending') response.approval = { ...response.approval, state: 'expired', reason: 'investigation cancelled' };
    }
  }

  // Reporting must happen even after a cancellation.
  finished = true;
  await CancellationScope.nonCancellable(async () => {
    await progress;
    enter('notifying');
    await notifyAll(targets, report, notified);
  });
  enter('done');
  return claimCheck(report());
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

interface JobEntry {
  job: PlannedJob;
  state: EngineJobState;
  report?: EngineReport;
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
