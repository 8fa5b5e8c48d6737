import {
  type Client,
  type ScheduleOptionsStartWorkflowAction,
  type Workflow,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import type { QueryDefinition, SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { ComplianceInput } from '../core/compliance';
import {
  type Decision, type InvestigationInput, type InvestigationPhase, type InvestigationReport, type InvestigationStatus,
  RECEIVED_MEMO, type ResponseRecord, type TaskInput,
} from '../core/investigation';
import { describeInput, INDEX_VALUE, indexValue, type InvestigationWhat, MAX_SEARCH_CHARS } from '../core/observable-index';
import {
  cancelSignal, complianceWorkflowId, decisionUpdates, enginesKey, observablesKey, observableTypesKey, sourceKey, statusQuery, verdictKey, WorkflowType,
} from './messages';

/**
 * The one Temporal client of Docket: every entry point (REST and Menagerie routes, Slack, compliance
 * events, schedules, scripts) starts and reads workflows through it. Workflow names, message
 * definitions and search-attribute keys come from contract/messages.ts and inputs from core/, so a
 * renamed query or a changed input is a compile error here rather than a failure at run time.
 */

/** What each workflow type is started with. */
export interface WorkflowInputs {
  [WorkflowType.investigation]: InvestigationInput;
  [WorkflowType.compliance]: ComplianceInput;
  [WorkflowType.task]: TaskInput;
}

/** Where claim-checked reports are read back from (infra/blob-store.ts's BlobStore is one). */
export interface ReportBlobs {
  read(sha256: string): Promise<Uint8Array>;
}

/**
 * A request Temporal answered that the caller can act on: an unknown id, a decision on a finished
 * workflow, a filter or page token that cannot be used. `statusCode` is the HTTP status it maps to.
 */
export class RequestRefused extends Error {
  constructor(readonly statusCode: 400 | 404 | 409, readonly code: 'bad_request' | 'not_found' | 'conflict', message: string) {
    super(message);
  }
}

const badRequest = (message: string) => new RequestRefused(400, 'bad_request', message);
const notFound = (message: string) => new RequestRefused(404, 'not_found', message);
const conflict = (message: string) => new RequestRefused(409, 'conflict', message);

/** What Docket knows of one investigation without asking a worker. */
export type InvestigationView =
  | { state: 'running'; phase: InvestigationPhase; finishedJobs: number; engineStarted: boolean }
  | { state: 'completed'; report: InvestigationReport }
  | { state: 'failed'; message: string };

export interface ListFilters {
  verdict?: string;
  source?: string;
  engine?: string;
  type?: string;
  status?: string;
  pageSize?: number;
  pageToken?: string;
  /** Only investigations that analyzed this value (given or found as an artifact), in any form indexValue reads. */
  observable?: string;
  /** Answer each workflow's memo too (the Cortex API reads its jobs' descriptions there). */
  withMemo?: boolean;
}

export interface ListedInvestigation {
  id: string;
  status: string;
  startedAt?: string;
  closedAt?: string;
  source?: string;
  verdict?: string;
  engines?: string[];
  observableTypes?: string[];
  /** What was investigated: the first subjects, from the memo the start wrote. */
  what?: InvestigationWhat;
  /** How many of its values "seen before" finds it by, once it parsed its input. */
  observablesIndexed?: { indexed: number; of: number };
  /** The workflow's memo (its phase while it runs, and what its starter kept there), when `withMemo` asked for it. */
  memo?: Map<string, unknown>;
}

/** One run a schedule started, as far as retention still knows it. */
export interface RunState {
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT… */
  status: string;
  /** The report's own status once the run completed: Success or Fail. */
  outcome?: string;
}

/** Which of an installation's workflows to list or count (DocketClient.listWorkflows). */
export interface WorkflowFilter {
  types: WorkflowType[];
  status?: 'Running' | 'Completed';
  startedSince?: Date;
  closedSince?: Date;
}

/** A workflow as visibility lists it, with its memo (an investigation's phase). */
export interface ListedWorkflow {
  id: string;
  runId: string;
  type: string;
  status: string;
  startedAt?: string;
  closedAt?: string;
  verdict?: string;
  memo: Record<string, unknown>;
}

/** Finished reports kept in memory: a finished investigation never changes, and /result is polled. */
const FINISHED_CACHE = 1000;
/**
 * How long a running investigation's view (its description) and live status (a query its worker
 * answers) are reused: a console or a Menagerie client polling many jobs costs Temporal one read per
 * job and interval, and no worker more than one query a second per job. A close ends the reuse at once
 * for a caller that waits for it (`waitForClose`).
 */
const RUNNING_VIEW_MS = 500;
const LIVE_STATUS_MS = 1_000;
/** Workflows whose close is long-polled at once; one poll per id, shared by every request waiting on it. */
const MAX_CLOSE_WAITS = 256;
/** One long poll's length; Temporal ends its own after about 20 s, and a new one follows while callers wait. */
const CLOSE_POLL_MS = 20_000;
/** After a failed long poll, so that a server refusing them is not asked again in a tight loop. */
const CLOSE_POLL_BACKOFF_MS = 1_000;
// Temporal's HistoryEventFilterType.CLOSE_EVENT
const CLOSE_EVENT = 2;

// Temporal's PendingActivityState.STARTED
const ACTIVITY_STARTED = 2;
const WORKFLOW_STATUS: Record<number, string> = {
  1: 'Running', 2: 'Completed', 3: 'Failed', 4: 'Canceled', 5: 'Terminated', 6: 'ContinuedAsNew', 7: 'TimedOut',
};
/** Values allowed in visibility filters: nothing that could change the query's meaning. */
const FILTER_VALUE = /^[A-Za-z0-9_.:-]{1,100}$/;

/**
 * The action a Temporal Schedule takes: start `type` with `input` on `taskQueue`. Temporal appends
 * the scheduled time to `workflowId`, so each run has its own.
 */
export function scheduledStart<T extends WorkflowType>(
  taskQueue: string,
  type: T,
  input: WorkflowInputs[T],
  options: { workflowId: string; memo?: Record<string, unknown> },
): ScheduleOptionsStartWorkflowAction<Workflow> {
  return {
    type: 'startWorkflow',
    workflowType: type,
    workflowId: options.workflowId,
    taskQueue,
    args: [input],
    memo: type === WorkflowType.investigation ? { what: describeInput(input as InvestigationInput), ...options.memo } : options.memo,
    typedSearchAttributes: [{ key: sourceKey, value: 'schedule' }],
  };
}

export class DocketClient {
  private readonly finished = new Map<string, InvestigationReport>();
  private readonly closedResults = new Map<string, unknown>();
  private readonly runningViews = new Map<string, { at: number; view: Promise<InvestigationView> }>();
  private readonly liveStatuses = new Map<string, { at: number; live: Promise<InvestigationStatus | undefined> }>();
  private readonly closeWaits = new Map<string, Promise<boolean>>();

  /**
   * `client`: the SDK client, for what is not a workflow (schedules, health checks); `taskQueue`: the
   * main worker's queue, where every workflow starts; `blobs`: where reports trimmed in history are kept.
   */
  constructor(readonly client: Client, readonly taskQueue: string, private readonly blobs?: ReportBlobs) {}

  // ---------------------------------------------------------------------------- starts

  /**
   * Resolves once Temporal has durably recorded the start: the job cannot be lost after this.
   * `once`: refuse the id even after an earlier workflow with it closed (a redelivered request);
   * the refusal is the SDK's WorkflowExecutionAlreadyStartedError.
   */
  async startInvestigation(
    input: InvestigationInput,
    id: string = crypto.randomUUID(),
    options: { once?: boolean; memo?: Record<string, unknown> } = {},
  ): Promise<string> {
    // The caller's memo keys (a Cortex job's description) sit beside the ones the workflow updates;
    // `what` is for lists, which read memos but not inputs.
    const memo = { what: describeInput(input), ...options.memo, ...RECEIVED_MEMO };
    await this.start(WorkflowType.investigation, input, { workflowId: id, source: input.source, once: options.once, memo });
    return id;
  }

  /**
   * Starts the remediation of one compliance finding; its workflow id is the finding's key, refused
   * even after the first run closed, so a re-sent finding is not remediated twice (the refusal is
   * WorkflowExecutionAlreadyStartedError).
   */
  async startCompliance(input: ComplianceInput): Promise<string> {
    const workflowId = complianceWorkflowId(input.finding);
    await this.start(WorkflowType.compliance, input, { workflowId, source: 'event', once: true });
    return workflowId;
  }

  /** Starts one engine run (`run <engine> <args>`); `once` as for investigations. */
  async startTask(input: TaskInput, id: string = crypto.randomUUID(), options: { once?: boolean } = {}): Promise<string> {
    await this.start(WorkflowType.task, input, { workflowId: id, source: input.source, once: options.once });
    return id;
  }

  /** The action of a Temporal Schedule that starts `type` on this client's task queue. */
  scheduledStart<T extends WorkflowType>(type: T, input: WorkflowInputs[T], options: { workflowId: string; memo?: Record<string, unknown> }) {
    return scheduledStart(this.taskQueue, type, input, options);
  }

  private async start<T extends WorkflowType>(
    type: T,
    input: WorkflowInputs[T],
    options: { workflowId: string; source: string; once?: boolean; memo?: Record<string, unknown> },
  ): Promise<void> {
    await this.client.workflow.start(type, {
      taskQueue: this.taskQueue,
      workflowId: options.workflowId,
      args: [input],
      memo: options.memo,
      typedSearchAttributes: [{ key: sourceKey, value: options.source }],
      ...(options.once ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
    });
  }

  // ---------------------------------------------------------------------------- messages

  /** Asks a running workflow (needs a worker); the definition names the query and types the answer. */
  async query<R>(id: string, definition: QueryDefinition<R, []>): Promise<R> {
    return this.client.workflow.getHandle(id).query(definition);
  }

  async signal<Args extends unknown[]>(id: string, definition: SignalDefinition<Args>, ...args: Args): Promise<void> {
    await this.client.workflow.getHandle(id).signal(definition, ...args);
  }

  async update<R, Args extends [unknown, ...unknown[]]>(id: string, definition: UpdateDefinition<R, Args>, ...args: Args): Promise<R> {
    return this.client.workflow.getHandle(id).executeUpdate(definition, { args });
  }

  // ---------------------------------------------------------------------------- reads

  /** Whether Temporal knows a workflow with this id, running or closed. */
  async exists(id: string): Promise<boolean> {
    try {
      await this.client.workflow.getHandle(id).describe();
      return true;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  }

  /** A workflow's memo and times from its description (no worker needed); RequestRefused 404 for an unknown id. */
  async describeRun(id: string): Promise<{ status: string; memo: Record<string, unknown>; startedAt?: string; closedAt?: string }> {
    const description = await this.describe(id);
    return {
      status: description.status.name,
      memo: (description.memo ?? {}) as Record<string, unknown>,
      startedAt: description.startTime?.toISOString(),
      closedAt: description.closeTime?.toISOString(),
    };
  }

  /**
   * Reads use the workflow's description, memo and result, so they work while no worker is running.
   * A running investigation's view may be up to RUNNING_VIEW_MS old, and concurrent reads share one.
   */
  async view(id: string): Promise<InvestigationView> {
    const known = this.finished.get(id);
    if (known) return { state: 'completed', report: known };
    const recent = this.runningViews.get(id);
    if (recent && Date.now() - recent.at < RUNNING_VIEW_MS) return recent.view;
    const view = this.readView(id);
    remember(this.runningViews, id, { at: Date.now(), view });
    try {
      const read = await view;
      if (read.state !== 'running') this.runningViews.delete(id);
      return read;
    } catch (error) {
      this.runningViews.delete(id);
      throw error;
    }
  }

  private async readView(id: string): Promise<InvestigationView> {
    const handle = this.client.workflow.getHandle(id);
    const description = await this.describe(id);
    const status = description.status.name;
    if (status === 'RUNNING') {
      const memo = (description.memo ?? {}) as { phase?: InvestigationPhase; finishedJobs?: number };
      const pending = description.raw.pendingActivities ?? [];
      return {
        state: 'running',
        phase: memo.phase ?? 'received',
        finishedJobs: memo.finishedJobs ?? 0,
        engineStarted: pending.some((activity) => activity.state === ACTIVITY_STARTED),
      };
    }
    if (status === 'COMPLETED') {
      const report = await this.fullReport((await handle.result()) as InvestigationReport);
      this.remember(id, report);
      return { state: 'completed', report };
    }
    let message = `the investigation was ${status.toLowerCase().replace('_', ' ')}`;
    try {
      await handle.result();
    } catch (error) {
      const cause = (error as { cause?: Error }).cause;
      if (cause?.message) message += `: ${cause.message}`;
    }
    return { state: 'failed', message };
  }

  /**
   * The live status from the workflow (needs a worker), or the final report. The live status is a
   * query on the worker, reused for LIVE_STATUS_MS and shared by concurrent reads.
   */
  async status(id: string): Promise<{ view: InvestigationView; live?: InvestigationStatus }> {
    const view = await this.view(id);
    if (view.state !== 'running') {
      this.liveStatuses.delete(id);
      return { view };
    }
    const recent = this.liveStatuses.get(id);
    if (recent && Date.now() - recent.at < LIVE_STATUS_MS) return { view, live: await recent.live };
    const live = this.query(id, statusQuery).catch(() => undefined);
    remember(this.liveStatuses, id, { at: Date.now(), live });
    return { view, live: await live };
  }

  /**
   * Resolves true once workflow `id` has closed, or false when `ms` have passed or `signal` aborted
   * (the caller then answers with the state as it is). Every caller waiting on one id shares one long
   * poll of its close event; past MAX_CLOSE_WAITS ids at once it answers false at once, so a flood of
   * waits costs no more than a flood of reads.
   */
  async waitForClose(id: string, ms: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.finished.has(id) && Date.now() < deadline && !signal?.aborted) {
      const closing = this.closeWait(id);
      if (!closing) return false;
      if (await raceUntil(closing, deadline, signal)) return true;
    }
    return this.finished.has(id);
  }

  private closeWait(id: string): Promise<boolean> | undefined {
    const known = this.closeWaits.get(id);
    if (known) return known;
    if (this.closeWaits.size >= MAX_CLOSE_WAITS) return undefined;
    const waiting = this.pollClose(id).finally(() => this.closeWaits.delete(id));
    this.closeWaits.set(id, waiting);
    return waiting;
  }

  /** One long poll for the close event of the current run, at most CLOSE_POLL_MS; true once it closed. */
  private async pollClose(id: string): Promise<boolean> {
    try {
      const response = await this.client.connection.withDeadline(Date.now() + CLOSE_POLL_MS, () => this.client.workflowService.getWorkflowExecutionHistory({
        namespace: this.client.options.namespace, execution: { workflowId: id }, waitNewEvent: true, historyEventFilterType: CLOSE_EVENT, skipArchival: true,
      }));
      const closed = Boolean(response.history?.events?.length);
      // What a reader sees next must be the close, not a view read before it.
      if (closed) this.runningViews.delete(id);
      return closed;
    } catch (error) {
      // The deadline ends a poll that saw no close; anything else waits a moment before the next poll.
      if ((error as { code?: number }).code !== GRPC_DEADLINE_EXCEEDED) await new Promise((resolve) => setTimeout(resolve, CLOSE_POLL_BACKOFF_MS));
      return false;
    }
  }

  /** A run a schedule started: its status and, once completed, its report's own status. */
  async runState(workflowId: string, runId?: string): Promise<RunState> {
    const handle = this.client.workflow.getHandle(workflowId, runId);
    const state: RunState = { status: (await handle.describe()).status.name };
    if (state.status === 'COMPLETED') state.outcome = ((await handle.result()) as { status?: string } | undefined)?.status;
    return state;
  }

  async list(filters: ListFilters): Promise<{ investigations: ListedInvestigation[]; nextPageToken?: string }> {
    // This installation's only: another sharing the namespace (its own task queue) is not listed.
    const clauses = [`TaskQueue = '${queryString(this.taskQueue)}'`, `WorkflowType = '${WorkflowType.investigation}'`];
    const add = (field: string, value: string | undefined, list = false) => {
      if (!value) return;
      if (!FILTER_VALUE.test(value)) throw badRequest(`filter ${field} may hold letters, digits and . _ : - only`);
      clauses.push(list ? `${field} IN ('${value}')` : `${field} = '${value}'`);
    };
    add(verdictKey.name, filters.verdict);
    add(sourceKey.name, filters.source);
    add(enginesKey.name, filters.engine, true);
    add(observableTypesKey.name, filters.type, true);
    if (filters.observable !== undefined) clauses.push(`${observablesKey.name} IN ('${searchTerm(filters.observable)}')`);
    if (filters.status) {
      const status = Object.values(WORKFLOW_STATUS).find((name) => name.toLowerCase() === filters.status!.toLowerCase());
      if (!status) throw badRequest(`status must be one of ${Object.values(WORKFLOW_STATUS).join(', ')}`);
      clauses.push(`ExecutionStatus = '${status}'`);
    }
    // Newest first is the visibility store's own order; SQLite visibility refuses ORDER BY.
    const query = clauses.join(' AND ');
    const response = await this.listExecutions({
      namespace: this.client.options.namespace,
      query,
      pageSize: filters.pageSize ?? 20,
      nextPageToken: filters.pageToken ? await unwrapPageToken(query, filters.pageToken) : undefined,
    });
    const investigations = (response.executions ?? []).map((execution): ListedInvestigation => {
      const attributes = decodeAttributes(execution.searchAttributes?.indexedFields ?? {});
      const memo = decodeAttributes(execution.memo?.fields ?? {});
      return {
        id: execution.execution?.workflowId ?? '',
        status: WORKFLOW_STATUS[execution.status ?? 0] ?? 'Unknown',
        startedAt: timestamp(execution.startTime),
        closedAt: timestamp(execution.closeTime),
        source: first(attributes.get(sourceKey.name)),
        verdict: first(attributes.get(verdictKey.name)),
        engines: attributes.get(enginesKey.name) as string[] | undefined,
        observableTypes: attributes.get(observableTypesKey.name) as string[] | undefined,
        ...listedMemo(memo),
        ...(filters.withMemo ? { memo } : {}),
      };
    });
    const token = response.nextPageToken?.length ? await wrapPageToken(query, response.nextPageToken) : undefined;
    return { investigations, nextPageToken: token };
  }

  /**
   * This installation's workflows (those started on this client's task queue, so another
   * installation sharing the namespace is not counted), newest first, at most `limit`; `more` tells
   * that visibility holds others past the limit. Times are bounds on start or close.
   */
  async listWorkflows(filter: WorkflowFilter, limit: number): Promise<{ workflows: ListedWorkflow[]; more: boolean }> {
    const query = this.workflowQuery(filter);
    const workflows: ListedWorkflow[] = [];
    let token: Uint8Array | undefined;
    // Pages of at most 1000, Temporal's own cap; the limit bounds the loop.
    do {
      const response = await this.client.workflowService.listWorkflowExecutions({
        namespace: this.client.options.namespace, query, pageSize: Math.min(1000, limit - workflows.length), nextPageToken: token,
      });
      for (const execution of response.executions ?? []) {
        if (workflows.length >= limit) return { workflows, more: true };
        const attributes = decodeAttributes(execution.searchAttributes?.indexedFields ?? {});
        workflows.push({
          id: execution.execution?.workflowId ?? '',
          runId: execution.execution?.runId ?? '',
          type: execution.type?.name ?? '',
          status: WORKFLOW_STATUS[execution.status ?? 0] ?? 'Unknown',
          startedAt: timestamp(execution.startTime),
          closedAt: timestamp(execution.closeTime),
          verdict: first(attributes.get(verdictKey.name)),
          memo: Object.fromEntries(decodeAttributes(execution.memo?.fields ?? {})),
        });
      }
      token = response.nextPageToken?.length ? response.nextPageToken : undefined;
    } while (token && workflows.length < limit);
    return { workflows, more: Boolean(token) };
  }

  /** How many of this installation's workflows match, however many there are. */
  async countWorkflows(filter: WorkflowFilter): Promise<number> {
    const response = await this.client.workflowService.countWorkflowExecutions({ namespace: this.client.options.namespace, query: this.workflowQuery(filter) });
    return Number(response.count ?? 0);
  }

  /**
   * What a completed run returned (an investigation's whole report, read back from the blob store
   * when history holds a trimmed copy); kept in memory, since a closed run never changes.
   */
  async closedResult<T>(id: string, runId: string): Promise<T> {
    const key = `${id}\n${runId}`;
    if (this.closedResults.has(key)) return this.closedResults.get(key) as T;
    const returned = await this.client.workflow.getHandle(id, runId).result() as { reportRef?: unknown };
    const result = returned?.reportRef ? await this.fullReport(returned as InvestigationReport) : returned;
    if (this.closedResults.size >= FINISHED_CACHE) this.closedResults.delete(this.closedResults.keys().next().value!);
    this.closedResults.set(key, result);
    return result as T;
  }

  private workflowQuery(filter: WorkflowFilter): string {
    const clauses = [
      `TaskQueue = '${queryString(this.taskQueue)}'`,
      `WorkflowType IN (${filter.types.map((type) => `'${type}'`).join(', ')})`,
    ];
    if (filter.status) clauses.push(`ExecutionStatus = '${filter.status}'`);
    if (filter.startedSince) clauses.push(`StartTime >= '${filter.startedSince.toISOString()}'`);
    if (filter.closedSince) clauses.push(`CloseTime >= '${filter.closedSince.toISOString()}'`);
    return clauses.join(' AND ');
  }

  // ---------------------------------------------------------------------------- steering

  async decide(id: string, verdict: keyof typeof decisionUpdates, decision: Decision): Promise<ResponseRecord[]> {
    const description = await this.describe(id);
    if (description.status.name !== 'RUNNING') throw conflict(`cannot ${verdict}: investigation ${id} has already finished (${description.status.name.toLowerCase()})`);
    try {
      return await this.update(id, decisionUpdates[verdict], decision);
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) throw conflict(`cannot ${verdict}: ${error.cause?.message ?? error.message}`);
      throw await this.closedMeanwhile(id, `cannot ${verdict}`, error);
    }
  }

  async cancel(id: string, by: string, reason?: string): Promise<void> {
    const description = await this.describe(id);
    if (description.status.name !== 'RUNNING') throw conflict(`investigation ${id} has already finished (${description.status.name.toLowerCase()})`);
    try {
      await this.signal(id, cancelSignal, { by, reason });
    } catch (error) {
      throw await this.closedMeanwhile(id, 'cannot cancel', error);
    }
  }

  /**
   * An investigation can close between the status check and the update or signal (Temporal then
   * answers "workflow update was aborted by closing workflow"): that is a 409 the caller can read
   * the outcome after, not a failure of Docket. Any other error stays as it was.
   */
  private async closedMeanwhile(id: string, what: string, error: unknown): Promise<unknown> {
    const now = await this.client.workflow.getHandle(id).describe().catch(() => undefined);
    if (!now || now.status.name === 'RUNNING') return error;
    return conflict(`${what}: investigation ${id} finished (${now.status.name.toLowerCase()}) while the request was delivered; read its report with GET /v1/investigations/${id}`);
  }

  // ---------------------------------------------------------------------------- internals

  private remember(id: string, report: InvestigationReport): void {
    remember(this.finished, id, report);
  }

  /** The whole report, read back from the blob store when history holds a trimmed copy. */
  private async fullReport(report: InvestigationReport): Promise<InvestigationReport> {
    if (!report.reportRef || !this.blobs) return report;
    return JSON.parse(new TextDecoder().decode(await this.blobs.read(report.reportRef.sha256))) as InvestigationReport;
  }

  /**
   * A token that passed its check but that Temporal still refuses was made to pass it, or outlived
   * the visibility store that issued it: either way the caller starts again from the first page.
   */
  private async listExecutions(request: Parameters<Client['workflowService']['listWorkflowExecutions']>[0]) {
    try {
      return await this.client.workflowService.listWorkflowExecutions(request);
    } catch (error) {
      if (request.nextPageToken && TOKEN_REFUSALS.includes((error as { code?: number }).code ?? 0)) throw invalidPageToken();
      throw error;
    }
  }

  private async describe(id: string) {
    if (!id) throw notFound('give a job id: /v1/investigations/<id>');
    try {
      return await this.client.workflow.getHandle(id).describe();
    } catch (error) {
      // 5: NOT_FOUND; 3: INVALID_ARGUMENT, which Temporal answers for ids it could never have issued.
      if (error instanceof WorkflowNotFoundError || [3, 5].includes((error as { code?: number }).code ?? 0)) {
        throw notFound(`no job ${id}: use the jobid that the upload answered`);
      }
      throw error;
    }
  }
}

// gRPC UNKNOWN and INVALID_ARGUMENT: what Temporal answers for page tokens it cannot read.
const TOKEN_REFUSALS = [2, 3];
const GRPC_DEADLINE_EXCEEDED = 4;

/** Sets `key` in a map bounded to FINISHED_CACHE entries, the oldest going first. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= FINISHED_CACHE) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** What `promise` resolves to, or false once `deadline` (ms since the epoch) passes or `signal` aborts. */
function raceUntil(promise: Promise<boolean>, deadline: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      resolve(value);
    };
    const aborted = () => done(false);
    const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
    signal?.addEventListener('abort', aborted, { once: true });
    promise.then(done, () => done(false));
  });
}
const PAGE_TOKEN = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{16})$/;

function invalidPageToken() {
  return badRequest('pageToken is not valid: pass the nextPageToken from the previous page of the same list (same filters) unchanged, or leave pageToken out for the first page');
}

/**
 * Page tokens are Temporal's, with a check of the token and of the query it pages through. A token
 * Temporal did not issue is answered only after the client has retried for many seconds, and then
 * with an internal error; the check refuses a made-up, damaged or other list's token at once. The
 * check is no secret and needs none, so every gateway of an installation, restarted or not, reads
 * the tokens of the others.
 */
async function wrapPageToken(query: string, token: Uint8Array): Promise<string> {
  return `${Buffer.from(token).toString('base64url')}.${await pageTokenCheck(query, token)}`;
}

async function unwrapPageToken(query: string, wrapped: string): Promise<Buffer> {
  const parts = PAGE_TOKEN.exec(wrapped);
  if (!parts) throw invalidPageToken();
  const token = Buffer.from(parts[1], 'base64url');
  if (await pageTokenCheck(query, token) !== parts[2]) throw invalidPageToken();
  return token;
}

/** Web Crypto rather than node:crypto: contract/ imports only core/, contract/ and Temporal's packages. */
async function pageTokenCheck(query: string, token: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', Buffer.concat([Buffer.from(`${query}\n`, 'utf8'), token]));
  return Buffer.from(digest).toString('base64url').slice(0, 16);
}

/** A Map, so an attribute named `__proto__` is only a name and cannot reach the prototype. */
function decodeAttributes(fields: Record<string, { data?: Uint8Array | null }>): Map<string, unknown> {
  const decoded = new Map<string, unknown>();
  for (const [name, payload] of Object.entries(fields)) {
    try {
      decoded.set(name, payload.data ? JSON.parse(Buffer.from(payload.data).toString('utf8')) : undefined);
    } catch {
      decoded.set(name, undefined);
    }
  }
  return decoded;
}

/** A task queue name inside a visibility query's quotes: quotes and backslashes escaped. */
function queryString(value: string): string {
  return value.replace(/[\\']/g, (character) => `\\${character}`);
}

/**
 * A search for one value, in the form investigations index it (core/observable-index.ts). That form
 * holds no quote or backslash, so it cannot change the query's meaning; the check says so again.
 */
function searchTerm(raw: string): string {
  if (raw.length > MAX_SEARCH_CHARS) throw badRequest(`observable is longer than ${MAX_SEARCH_CHARS} characters: no observable is that long; search for a shorter value`);
  const term = indexValue(raw);
  if (!term) throw badRequest('observable is empty: give the value to look for, such as evil.example, a URL, an IP address or a hash');
  if (!INDEX_VALUE.test(term)) throw badRequest('observable could not be turned into a search: give the value as it was investigated');
  return term;
}

/** The memo fields a list shows, read with care: a memo is whatever the starter wrote, older runs lack them. */
function listedMemo(memo: Map<string, unknown>): Pick<ListedInvestigation, 'what' | 'observablesIndexed'> {
  const listed: Pick<ListedInvestigation, 'what' | 'observablesIndexed'> = {};
  const what = memo.get('what') as Partial<InvestigationWhat> | undefined;
  if (what && Array.isArray(what.items) && typeof what.more === 'number') {
    const items = what.items.filter((item) => typeof item?.label === 'string' && (item.search === undefined || typeof item.search === 'string'));
    listed.what = { items: items.map((item) => ({ label: item.label, ...(item.search ? { search: item.search } : {}) })), more: what.more };
  }
  const counted = memo.get('observablesIndexed') as { indexed?: unknown; of?: unknown } | undefined;
  if (typeof counted?.indexed === 'number' && typeof counted.of === 'number') listed.observablesIndexed = { indexed: counted.indexed, of: counted.of };
  return listed;
}

function first(value: unknown): string | undefined {
  return Array.isArray(value) ? value[0] : (value as string | undefined);
}

function timestamp(value: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!value?.seconds) return undefined;
  return new Date(Number(value.seconds) * 1000 + Math.floor((value.nanos ?? 0) / 1e6)).toISOString();
}
