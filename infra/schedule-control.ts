import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOverlapPolicy,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
} from '@temporalio/client';
import { parse as parseYaml } from 'yaml';
import { describeIssues } from '../core/engine-manifest';
import { InvestigationInput, RECEIVED_MEMO, TaskInput } from '../core/investigation';
import { checkWebhook } from '../core/notify-targets';
import { type DocketClient, scheduledStart } from '../contract/client';
import { temporalScheduleId, WorkflowType } from '../contract/messages';
import { type OverlapPolicy, type ScheduleDefinition, validateSchedule } from '../core/schedule-definition';
import type { Logger } from './log';

/**
 * Docket's schedules in Temporal (docs/architecture.md, "Schedules are files"): `schedules/*.yaml` reconciled into Temporal
 * Schedules, and the controls the API and the CLI use on them (list, pause, unpause, trigger, backfill).
 * It lives with the other side effects rather than in workers/ because the gateway and the CLI use it
 * too, and neither may depend on worker code.
 *
 * A schedule Docket manages has the ID `<DOCKET_QUEUE_PREFIX>docket-<id>` and the schedule memo
 * `{managedBy: 'docket', queuePrefix, file}`. Temporal cannot update a schedule's memo, so the hash of
 * the definition, which decides whether a file changed, sits in the action's memo (`docketSchedule`),
 * which every update replaces and every started workflow carries.
 */

export const MANAGED_BY = 'docket';
const HASH_VERSION = 1;
/** Runs one backfill may start, so a wide range on a frequent schedule cannot flood the workers. */
export const MAX_BACKFILL_RUNS = 1000;
/** Schedules one listing answers; far more than a schedules folder holds. */
const MAX_LISTED = 500;
const RECENT_RUNS = 3;

/** What the action memo records about the definition a schedule came from. */
export interface ScheduleOrigin {
  id: string;
  file: string;
  hash: string;
  description: string;
  action: 'investigate' | 'run';
  engine?: string;
  cron?: string;
  intervalMs?: number;
  offsetMs?: number;
}

export interface ScheduleContext {
  /** The main worker's task queue, where the workflows start. */
  taskQueue: string;
  queuePrefix: string;
}

/** The Docket id of a Temporal Schedule this installation manages, or undefined for any other schedule. */
export function docketScheduleId(queuePrefix: string, scheduleId: string, memo: Record<string, unknown> | undefined): string | undefined {
  const prefix = temporalScheduleId(queuePrefix, '');
  if (memo?.managedBy !== MANAGED_BY || memo.queuePrefix !== queuePrefix || !scheduleId.startsWith(prefix)) return undefined;
  return scheduleId.slice(prefix.length);
}

export interface LoadedSchedule {
  schedule: ScheduleDefinition;
  /** The file, relative to the working directory, as errors and the memo name it. */
  file: string;
}

export interface LoadedSchedules {
  schedules: LoadedSchedule[];
  /** Files that exist but were skipped; their schedules are left as they are. */
  skippedFiles: string[];
  errors: string[];
}

/** Reads and validates every `*.yaml`/`*.yml` in `dir`; a bad file is reported with its field and skipped. */
export async function loadScheduleFiles(dir: string): Promise<LoadedSchedules> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = entries.filter((entry) => entry.isFile() && /\.ya?ml$/.test(entry.name)).map((entry) => entry.name).sort();
  const result: LoadedSchedules = { schedules: [], skippedFiles: [], errors: [] };
  const byId = new Map<string, string>();
  for (const name of files) {
    const path = join(dir, name);
    const file = relative(process.cwd(), path) || path;
    const skip = (error: string) => {
      result.errors.push(error);
      result.skippedFiles.push(file);
    };
    let doc: unknown;
    try {
      doc = parseYaml(await readFile(path, 'utf8'));
    } catch (error) {
      skip(`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
      continue;
    }
    const validated = validateSchedule(doc, file);
    if (!validated.ok) {
      skip(validated.error);
      continue;
    }
    const earlier = byId.get(validated.schedule.id);
    if (earlier) {
      skip(`${file}: id: schedule ${validated.schedule.id} is already defined by ${earlier}`);
      continue;
    }
    byId.set(validated.schedule.id, file);
    result.schedules.push({ schedule: validated.schedule, file });
  }
  return result;
}

/** JSON with sorted keys, so the same definition always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, item]) => item !== undefined).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function scheduleHash(schedule: ScheduleDefinition, context: ScheduleContext): string {
  const text = canonical({ version: HASH_VERSION, schedule, taskQueue: context.taskQueue, queuePrefix: context.queuePrefix });
  return createHash('sha256').update(text).digest('hex');
}

function overlapPolicy(overlap: OverlapPolicy): ScheduleOverlapPolicy {
  return overlap.toUpperCase() as ScheduleOverlapPolicy;
}

export type CompiledSchedule =
  | { ok: true; scheduleId: string; options: ScheduleOptions; origin: ScheduleOrigin }
  | { ok: false; error: string };

/** The workflow input's `notify`: Docket reports a run to one webhook and one Slack channel. */
function notifyOf(schedule: ScheduleDefinition, file: string): { ok: true; notify?: InvestigationInput['notify'] } | { ok: false; error: string } {
  const webhooks = schedule.notify.flatMap((target) => (target.webhook ? [target.webhook] : []));
  const channels = schedule.notify.flatMap((target) => (target.slack ? [target.slack] : []));
  if (webhooks.length > 1 || channels.length > 1) {
    return { ok: false, error: `${file}: notify: at most one webhook and one slack target (a run reports to one of each)` };
  }
  if (!webhooks.length && !channels.length) return { ok: true };
  return { ok: true, notify: { webhook: webhooks[0], slack: channels[0] ? { channel: channels[0] } : undefined } };
}

/** Turns a definition into the Temporal Schedule that starts its workflow. */
export function compileSchedule(loaded: LoadedSchedule, context: ScheduleContext): CompiledSchedule {
  const { schedule, file } = loaded;
  const notify = notifyOf(schedule, file);
  if (!notify.ok) return notify;
  const requester = `schedule ${schedule.id}`;
  const origin: ScheduleOrigin = {
    id: schedule.id,
    file,
    hash: scheduleHash(schedule, context),
    description: schedule.description,
    action: schedule.action.investigate ? 'investigate' : 'run',
    engine: schedule.action.run?.engine,
    cron: schedule.cron,
    intervalMs: schedule.interval,
    offsetMs: schedule.offset,
  };
  const scheduleId = temporalScheduleId(context.queuePrefix, schedule.id);
  let action: ReturnType<typeof scheduledStart>;
  if (schedule.action.investigate) {
    const parsed = InvestigationInput.safeParse({ ...schedule.action.investigate, source: 'schedule', notify: notify.notify, requester });
    if (!parsed.success) return { ok: false, error: `${file}: action.investigate: ${describeIssues(parsed.error)}` };
    // What DocketClient.startInvestigation records, so GET /result and /v1/investigations read scheduled runs alike.
    action = scheduledStart(context.taskQueue, WorkflowType.investigation, parsed.data, { workflowId: scheduleId, memo: { ...RECEIVED_MEMO, docketSchedule: origin } });
  } else {
    // Env values stay as written, ${NAME} included: the engine worker expands them, so no secret
    // enters the schedule or the workflow history.
    const parsed = TaskInput.safeParse({ ...schedule.action.run, source: 'schedule', notify: notify.notify, requester });
    if (!parsed.success) return { ok: false, error: `${file}: action.run: ${describeIssues(parsed.error)}` };
    action = scheduledStart(context.taskQueue, WorkflowType.task, parsed.data, { workflowId: scheduleId, memo: { docketSchedule: origin } });
  }
  const spec = schedule.cron !== undefined
    ? { cronExpressions: [schedule.cron], timezone: schedule.timezone }
    : { intervals: [{ every: schedule.interval as number, offset: schedule.offset }], timezone: schedule.timezone };
  return {
    ok: true,
    scheduleId,
    origin,
    options: {
      scheduleId,
      spec,
      action,
      policies: { overlap: overlapPolicy(schedule.overlap), catchupWindow: schedule.catchupWindow },
      state: { paused: schedule.paused, note: `defined by ${file}` },
      memo: { managedBy: MANAGED_BY, queuePrefix: context.queuePrefix, file },
    },
  };
}

export interface ReconcileOptions extends ScheduleContext {
  client: Client;
  dir: string;
  log?: Logger;
  /** Engines this installation declares; a schedule naming another one gets a warning. */
  engines?: string[];
  /** Which of them are responders; a schedule that would run one outside `respond` gets a warning. */
  responders?: string[];
  /** DOCKET_WEBHOOK_ALLOW (with DOCKET_WEBHOOK_URL): a schedule's webhook none of them admits gets a warning (the run will not send to it). */
  webhookAllow?: string[];
}

export interface ReconcileReport {
  created: string[];
  updated: string[];
  unchanged: string[];
  deleted: string[];
  /** Each names the file and the field; that file's schedule is left as it was. */
  errors: string[];
  warnings: string[];
}

function actionMemoOf(description: ScheduleDescription): ScheduleOrigin | undefined {
  const memo = description.action.type === 'startWorkflow' ? description.action.memo : undefined;
  return memo?.docketSchedule as ScheduleOrigin | undefined;
}

function warningsFor(loaded: LoadedSchedule, options: ReconcileOptions): string[] {
  const warnings: string[] = [];
  const { schedule, file } = loaded;
  const named = schedule.action.run ? [schedule.action.run.engine] : schedule.action.investigate?.engines ?? [];
  const field = schedule.action.run ? 'action.run.engine' : 'action.investigate.engines';
  for (const engine of named) {
    if (options.engines && !options.engines.includes(engine)) warnings.push(`${file}: ${field}: no engine ${engine} is declared here; its runs will fail until one is`);
    if (options.responders?.includes(engine)) {
      warnings.push(`${file}: ${field}: ${engine} is a responder, which never runs as ${schedule.action.run ? 'a task' : 'an analysis'}: `
        + `name it in action.investigate.respond, where each run waits for approval unless the policy says approval: none`);
    }
  }
  for (const engine of schedule.action.investigate?.respond ?? []) {
    if (options.responders && !options.responders.includes(engine)) {
      warnings.push(`${file}: action.investigate.respond: ${engine} is not a responder declared here; its runs will report it and do nothing with it`);
    }
  }
  schedule.notify.forEach((target, index) => {
    if (target.webhook && options.webhookAllow && !checkWebhook(target.webhook, options.webhookAllow).ok) {
      warnings.push(`${file}: notify[${index}].webhook: not allowed by DOCKET_WEBHOOK_ALLOW, so runs will not send to it`);
    }
  });
  return warnings;
}

/**
 * Makes Temporal's schedules match the files: creates what is new, updates what changed, deletes what
 * this installation manages and no file defines any more. Reconciling twice changes nothing. A file
 * with an error is skipped and its schedule left as it was; a missing folder changes nothing, so a
 * mistyped DOCKET_SCHEDULES_DIR cannot delete every schedule.
 */
export async function reconcileSchedules(options: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = { created: [], updated: [], unchanged: [], deleted: [], errors: [], warnings: [] };
  let loaded: LoadedSchedules;
  try {
    loaded = await loadScheduleFiles(options.dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`;
    report.errors.push(`${options.dir}: the schedules folder ${why}; no schedule was changed (set DOCKET_SCHEDULES_DIR)`);
    return report;
  }
  report.errors.push(...loaded.errors);
  const wanted = new Set<string>();
  const skippedFiles = new Set(loaded.skippedFiles);
  for (const item of loaded.schedules) {
    const compiled = compileSchedule(item, options);
    if (!compiled.ok) {
      report.errors.push(compiled.error);
      skippedFiles.add(item.file);
      continue;
    }
    wanted.add(compiled.scheduleId);
    report.warnings.push(...warningsFor(item, options));
    try {
      const outcome = await apply(options.client, compiled, options.queuePrefix);
      report[outcome].push(item.schedule.id);
    } catch (error) {
      const message = (error as Error).message;
      // Only Temporal knows the time zone names; its refusal is about this one field.
      report.errors.push(/time ?zone/i.test(message)
        ? `${item.file}: timezone: Temporal does not know ${item.schedule.timezone} (${message}); use an IANA name such as Europe/Paris`
        : `${item.file}: Temporal refused schedule ${item.schedule.id}: ${message}`);
    }
  }
  for await (const summary of options.client.schedule.list()) {
    const id = docketScheduleId(options.queuePrefix, summary.scheduleId, summary.memo);
    if (id === undefined || wanted.has(summary.scheduleId)) continue;
    // Its file is still there but has an error: keep the schedule until the file is fixed.
    if (skippedFiles.has(String(summary.memo?.file))) continue;
    try {
      await options.client.schedule.getHandle(summary.scheduleId).delete();
      report.deleted.push(id);
    } catch (error) {
      // Listing lags behind deletes; a schedule gone already is what was wanted.
      if (!(error instanceof ScheduleNotFoundError)) report.errors.push(`schedule ${id}: cannot delete it: ${(error as Error).message}`);
    }
  }
  for (const error of report.errors) options.log?.warn(`schedules: ${error}`);
  for (const warning of report.warnings) options.log?.warn(`schedules: ${warning}`);
  const changed = [['created', report.created], ['updated', report.updated], ['deleted', report.deleted]] as const;
  const summary = changed.filter(([, ids]) => ids.length).map(([what, ids]) => `${what} ${ids.join(', ')}`);
  options.log?.info(`schedules: ${summary.length ? summary.join('; ') : 'no change'} (${report.unchanged.length} unchanged)`);
  return report;
}

async function apply(client: Client, compiled: Extract<CompiledSchedule, { ok: true }>, queuePrefix: string): Promise<'created' | 'updated' | 'unchanged'> {
  const handle = client.schedule.getHandle(compiled.scheduleId);
  let current: ScheduleDescription;
  try {
    current = await handle.describe();
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
    try {
      await client.schedule.create(compiled.options);
      return 'created';
    } catch (raced) {
      // Another Docket process (a second worker) created it in between: compare with that one.
      if (!(raced instanceof ScheduleAlreadyRunning)) throw raced;
      current = await handle.describe();
    }
  }
  if (docketScheduleId(queuePrefix, compiled.scheduleId, current.memo) === undefined) {
    throw new Error(`a schedule with ID ${compiled.scheduleId} exists and Docket does not manage it; rename this schedule or delete that one`);
  }
  if (actionMemoOf(current)?.hash === compiled.origin.hash) return 'unchanged';
  const { spec, action, policies, state } = compiled.options;
  await handle.update(() => ({ spec, action, policies, state: { paused: state?.paused, note: state?.note } }));
  return 'updated';
}

export class UnknownScheduleError extends Error {
  constructor(readonly id: string) {
    super(`no schedule ${id}: Docket manages only the schedules its schedules folder defines (GET /v1/schedules lists them)`);
  }
}

export interface ScheduleRun {
  workflowId: string;
  scheduledAt: string;
  startedAt: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT… */
  status: string;
  /** The report's own status once the run completed: Success or Fail. */
  outcome?: string;
}

export interface ListedSchedule {
  id: string;
  scheduleId: string;
  description: string;
  file?: string;
  action?: ScheduleOrigin['action'];
  engine?: string;
  cron?: string;
  intervalMs?: number;
  paused: boolean;
  note?: string;
  nextRuns: string[];
  /** The most recent runs, newest first. */
  recentRuns: ScheduleRun[];
  actionsTaken: number;
}

/** The controls on Docket's schedules, through the Temporal client only (the API and the CLI use them). */
export class DocketSchedules {
  private readonly client: Client;

  constructor(private readonly temporal: DocketClient, private readonly queuePrefix: string) {
    this.client = temporal.client;
  }

  async list(): Promise<ListedSchedule[]> {
    const ids: string[] = [];
    for await (const summary of this.client.schedule.list()) {
      const id = docketScheduleId(this.queuePrefix, summary.scheduleId, summary.memo);
      if (id !== undefined) ids.push(id);
      if (ids.length >= MAX_LISTED) break;
    }
    const listed: ListedSchedule[] = [];
    for (const id of ids.sort()) {
      try {
        listed.push(await this.get(id));
      } catch (error) {
        // Listing lags behind deletes.
        if (!(error instanceof UnknownScheduleError)) throw error;
      }
    }
    return listed;
  }

  async get(id: string): Promise<ListedSchedule> {
    const description = await this.describe(id);
    const origin = actionMemoOf(description);
    const recent = [...description.info.recentActions].reverse().slice(0, RECENT_RUNS);
    return {
      id,
      scheduleId: description.scheduleId,
      description: origin?.description ?? '',
      file: origin?.file,
      action: origin?.action,
      engine: origin?.engine,
      cron: origin?.cron,
      intervalMs: origin?.intervalMs,
      paused: description.state.paused,
      note: description.state.note,
      nextRuns: description.info.nextActionTimes.map((time) => time.toISOString()),
      recentRuns: await Promise.all(recent.map((action) => this.run(action))),
      actionsTaken: description.info.numActionsTaken,
    };
  }

  async pause(id: string, note: string): Promise<void> {
    await this.describe(id);
    await this.handle(id).pause(note);
  }

  async unpause(id: string, note: string): Promise<void> {
    await this.describe(id);
    await this.handle(id).unpause(note);
  }

  /** Starts a run now; by default even while another runs, because someone asked for this one. */
  async trigger(id: string, overlap: OverlapPolicy = 'allow_all'): Promise<void> {
    await this.describe(id);
    await this.handle(id).trigger(overlapPolicy(overlap));
  }

  /**
   * Takes the actions the schedule would have taken between `start` (exclusive) and `end` (inclusive),
   * as Temporal counts them; by default all of them even when they overlap, since each stands for a
   * missed run. Returns how many runs that is: exactly for an interval, at most for a cron schedule.
   */
  async backfill(id: string, start: Date, end: Date, overlap: OverlapPolicy = 'allow_all'): Promise<{ estimatedRuns?: number }> {
    const estimatedRuns = runsBetween(await this.describe(id), start, end);
    if (estimatedRuns !== undefined && estimatedRuns > MAX_BACKFILL_RUNS) {
      throw new BackfillTooLargeError(`backfilling ${id} from ${start.toISOString()} to ${end.toISOString()} would start about ${estimatedRuns} runs; at most ${MAX_BACKFILL_RUNS} at once: split the range`);
    }
    await this.handle(id).backfill({ start, end, overlap: overlapPolicy(overlap) });
    return { estimatedRuns };
  }

  private handle(id: string) {
    return this.client.schedule.getHandle(temporalScheduleId(this.queuePrefix, id));
  }

  /** The schedule's description, or UnknownScheduleError for one this installation does not manage. */
  private async describe(id: string): Promise<ScheduleDescription> {
    let description: ScheduleDescription;
    try {
      description = await this.handle(id).describe();
    } catch (error) {
      if (error instanceof ScheduleNotFoundError) throw new UnknownScheduleError(id);
      throw error;
    }
    if (docketScheduleId(this.queuePrefix, description.scheduleId, description.memo) !== id) throw new UnknownScheduleError(id);
    return description;
  }

  private async run(action: ScheduleDescription['info']['recentActions'][number]): Promise<ScheduleRun> {
    const { workflowId, firstExecutionRunId } = action.action.workflow;
    const run: ScheduleRun = { workflowId, scheduledAt: action.scheduledAt.toISOString(), startedAt: action.takenAt.toISOString(), status: 'UNKNOWN' };
    try {
      Object.assign(run, await this.temporal.runState(workflowId, firstExecutionRunId));
    } catch {
      // Retention may have removed an old run; it stays listed with its times.
    }
    return run;
  }
}

export class BackfillTooLargeError extends Error {}

/**
 * Runs a schedule takes in (start, end]: interval runs fall where (time - offset) is a multiple of the
 * interval; for cron, a bound from the shortest gap between its next runs.
 */
function runsBetween(description: ScheduleDescription, start: Date, end: Date): number | undefined {
  const origin = actionMemoOf(description);
  if (origin?.intervalMs) {
    const every = origin.intervalMs;
    const offset = origin.offsetMs ?? 0;
    return Math.floor((end.getTime() - offset) / every) - Math.floor((start.getTime() - offset) / every);
  }
  const times = description.info.nextActionTimes.map((time) => time.getTime());
  const gaps = times.slice(1).map((time, index) => time - times[index]).filter((gap) => gap > 0);
  return gaps.length ? Math.floor((end.getTime() - start.getTime()) / Math.min(...gaps)) + 1 : undefined;
}
