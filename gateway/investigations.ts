import { createHash, randomUUID } from 'node:crypto';
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import {
  type Decision, type InvestigationInput, type InvestigationPhase, type InvestigationReport, type InvestigationStatus,
  RECEIVED_MEMO, type ResponseRecord,
} from '../core/investigation';
import {
  cancelSignal, decisionUpdates, enginesKey, observableTypesKey, sourceKey, statusQuery, verdictKey, WorkflowType,
} from '../contract/messages';
import type { BlobStore } from '../infra/blob-store';
import { badRequest, conflict, notFound } from './errors';

/** What the gateway knows of one investigation without asking a worker. */
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
}

/** Finished reports kept in memory: a finished investigation never changes, and /result is polled. */
const FINISHED_CACHE = 1000;

// Temporal's PendingActivityState.STARTED
const ACTIVITY_STARTED = 2;
const WORKFLOW_STATUS: Record<number, string> = {
  1: 'Running', 2: 'Completed', 3: 'Failed', 4: 'Canceled', 5: 'Terminated', 6: 'ContinuedAsNew', 7: 'TimedOut',
};
/** Values allowed in visibility filters: nothing that could change the query's meaning. */
const FILTER_VALUE = /^[A-Za-z0-9_.:-]{1,100}$/;

/**
 * Starts and reads investigations through the Temporal client only. Reading uses the workflow's
 * description, memo and result, so it works while no worker is running.
 */
export class Investigations {
  private readonly finished = new Map<string, InvestigationReport>();

  constructor(private readonly client: Client, private readonly taskQueue: string, private readonly blobs?: BlobStore) {}

  private remember(id: string, report: InvestigationReport): void {
    if (this.finished.size >= FINISHED_CACHE) this.finished.delete(this.finished.keys().next().value!);
    this.finished.set(id, report);
  }

  /** The whole report, read back from the blob store when history holds a trimmed copy. */
  private async fullReport(report: InvestigationReport): Promise<InvestigationReport> {
    if (!report.reportRef || !this.blobs) return report;
    return JSON.parse((await this.blobs.read(report.reportRef.sha256)).toString('utf8')) as InvestigationReport;
  }

  /**
   * Resolves once Temporal has durably recorded the start: the job cannot be lost after this.
   * `once`: refuse the id even after an earlier workflow with it closed (a redelivered request).
   */
  async start(input: InvestigationInput, id: string = randomUUID(), options: { once?: boolean } = {}): Promise<string> {
    await this.client.workflow.start(WorkflowType.investigation, {
      taskQueue: this.taskQueue,
      workflowId: id,
      args: [input],
      memo: { ...RECEIVED_MEMO },
      searchAttributes: { [sourceKey.name]: [input.source] },
      ...(options.once ? { workflowIdReusePolicy: 'REJECT_DUPLICATE' as const } : {}),
    });
    return id;
  }

  async view(id: string): Promise<InvestigationView> {
    const known = this.finished.get(id);
    if (known) return { state: 'completed', report: known };
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

  /** The live status from the workflow (needs a worker), or the final report. */
  async status(id: string): Promise<{ view: InvestigationView; live?: InvestigationStatus }> {
    const view = await this.view(id);
    if (view.state !== 'running') return { view };
    try {
      const live = await this.client.workflow.getHandle(id).query(statusQuery);
      return { view, live };
    } catch {
      return { view };
    }
  }

  async list(filters: ListFilters): Promise<{ investigations: ListedInvestigation[]; nextPageToken?: string }> {
    const clauses = [`WorkflowType = '${WorkflowType.investigation}'`];
    const add = (field: string, value: string | undefined, list = false) => {
      if (!value) return;
      if (!FILTER_VALUE.test(value)) throw badRequest(`filter ${field} may hold letters, digits and . _ : - only`);
      clauses.push(list ? `${field} IN ('${value}')` : `${field} = '${value}'`);
    };
    add(verdictKey.name, filters.verdict);
    add(sourceKey.name, filters.source);
    add(enginesKey.name, filters.engine, true);
    add(observableTypesKey.name, filters.type, true);
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
      nextPageToken: filters.pageToken ? unwrapPageToken(query, filters.pageToken) : undefined,
    });
    const investigations = (response.executions ?? []).map((execution): ListedInvestigation => {
      const attributes = decodeAttributes(execution.searchAttributes?.indexedFields ?? {});
      return {
        id: execution.execution?.workflowId ?? '',
        status: WORKFLOW_STATUS[execution.status ?? 0] ?? 'Unknown',
        startedAt: timestamp(execution.startTime),
        closedAt: timestamp(execution.closeTime),
        source: first(attributes.get(sourceKey.name)),
        verdict: first(attributes.get(verdictKey.name)),
        engines: attributes.get(enginesKey.name) as string[] | undefined,
        observableTypes: attributes.get(observableTypesKey.name) as string[] | undefined,
      };
    });
    const token = response.nextPageToken?.length ? wrapPageToken(query, response.nextPageToken) : undefined;
    return { investigations, nextPageToken: token };
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

  async decide(id: string, verdict: 'approve' | 'reject', decision: Decision): Promise<ResponseRecord[]> {
    const description = await this.describe(id);
    if (description.status.name !== 'RUNNING') throw conflict(`cannot ${verdict}: investigation ${id} has already finished (${description.status.name.toLowerCase()})`);
    try {
      return await this.client.workflow.getHandle(id).executeUpdate(decisionUpdates[verdict], { args: [decision] });
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) throw conflict(`cannot ${verdict}: ${error.cause?.message ?? error.message}`);
      throw error;
    }
  }

  async cancel(id: string, by: string, reason?: string): Promise<void> {
    const description = await this.describe(id);
    if (description.status.name !== 'RUNNING') throw conflict(`investigation ${id} has already finished (${description.status.name.toLowerCase()})`);
    await this.client.workflow.getHandle(id).signal(cancelSignal, { by, reason });
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
function wrapPageToken(query: string, token: Uint8Array): string {
  return `${Buffer.from(token).toString('base64url')}.${pageTokenCheck(query, token)}`;
}

function unwrapPageToken(query: string, wrapped: string): Buffer {
  const parts = PAGE_TOKEN.exec(wrapped);
  if (!parts) throw invalidPageToken();
  const token = Buffer.from(parts[1], 'base64url');
  if (pageTokenCheck(query, token) !== parts[2]) throw invalidPageToken();
  return token;
}

function pageTokenCheck(query: string, token: Uint8Array): string {
  return createHash('sha256').update(query).update('\n').update(token).digest('base64url').slice(0, 16);
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

function first(value: unknown): string | undefined {
  return Array.isArray(value) ? value[0] : (value as string | undefined);
}

function timestamp(value: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!value?.seconds) return undefined;
  return new Date(Number(value.seconds) * 1000 + Math.floor((value.nanos ?? 0) / 1e6)).toISOString();
}
