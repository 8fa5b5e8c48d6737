import { createHash } from 'node:crypto';
import { type DocketClient, type InvestigationView, RequestRefused } from '../contract/client';
import { isCortexJobId } from '../contract/messages';
import {
  CORTEX_MEMO_KEY, cortexArtifact, cortexJob, type CortexJobFacts, CortexJobMemo, type CortexJobStatus, cortexTaxonomies,
} from '../core/cortex-api';
import type { EngineReport, InvestigationReport } from '../core/investigation';
import type { BlobStore } from '../infra/blob-store';

/**
 * Cortex jobs read from Temporal: each is an investigation whose workflow id is the job id and whose
 * memo holds the job's description (core/cortex-api.ts). Nothing here keeps state of its own but the
 * deletion marks, which live in the blob store so every gateway, restarted or not, sees them.
 */

/** A job Docket cannot find, in Cortex's words. */
export class CortexRefusal extends Error {
  constructor(readonly statusCode: number, readonly type: string, message: string) {
    super(message);
  }
}

export const jobNotFound = (id: string) => new CortexRefusal(404, 'JobNotFoundError', `Job ${id} not found: use the id that POST /api/analyzer/<id>/run or /api/responder/<id>/run answered`);

/** Everything a job's answers are made from. */
export interface CortexJobState {
  memo: CortexJobMemo;
  facts: CortexJobFacts;
  /** The engine's report, once the job ran. */
  report?: EngineReport;
}

/**
 * A deletion is marked by a blob whose content names the job: content-addressed, so any gateway finds
 * the mark by hashing the same words, it survives restarts, and retention sweeps it with the job.
 */
function deletionMark(id: string): string {
  return `docket: Cortex job ${id} was deleted\n`;
}

export async function isDeleted(blobs: BlobStore, id: string): Promise<boolean> {
  return blobs.has(createHash('sha256').update(deletionMark(id)).digest('hex'));
}

export async function markDeleted(blobs: BlobStore, id: string): Promise<void> {
  await blobs.putBuffer(deletionMark(id));
}

/** The job's description from its memo; a workflow without one is not a Cortex job. */
export function readMemo(id: string, memo: Record<string, unknown> | Map<string, unknown> | undefined): CortexJobMemo {
  const value = memo instanceof Map ? memo.get(CORTEX_MEMO_KEY) : memo && Object.hasOwn(memo, CORTEX_MEMO_KEY) ? memo[CORTEX_MEMO_KEY] : undefined;
  const parsed = CortexJobMemo.safeParse(value);
  if (!parsed.success) throw jobNotFound(id);
  return parsed.data;
}

/** One job, as it stands now. */
export async function readJob(temporal: DocketClient, blobs: BlobStore, id: string): Promise<CortexJobState> {
  if (!isCortexJobId(id)) throw jobNotFound(id);
  let described: Awaited<ReturnType<DocketClient['describeRun']>>;
  try {
    described = await temporal.describeRun(id);
  } catch (error) {
    if (error instanceof RequestRefused && error.statusCode === 404) throw jobNotFound(id);
    throw error;
  }
  const memo = readMemo(id, described.memo);
  return settle(temporal, blobs, id, memo, described.startedAt, described.closedAt);
}

/** The status and engine report of a job whose description is known (from a listing or a describe). */
export async function settle(temporal: DocketClient, blobs: BlobStore, id: string, memo: CortexJobMemo, startedAt?: string, closedAt?: string): Promise<CortexJobState> {
  const base = { id, startedAt, closedAt };
  if (await isDeleted(blobs, id)) return { memo, facts: { ...base, status: 'Deleted' } };
  const view = await temporal.view(id);
  const outcome = outcomeOf(view, memo);
  return { memo, facts: { ...base, ...outcome.facts }, report: outcome.report };
}

function outcomeOf(view: InvestigationView, memo: CortexJobMemo): { facts: Pick<CortexJobFacts, 'status' | 'errorMessage' | 'fromCache'>; report?: EngineReport } {
  if (view.state === 'failed') return { facts: { status: 'Failure', errorMessage: view.message } };
  if (view.state === 'running') {
    // A job is Waiting until an engine runs: queued for a worker, or a responder waiting for approval.
    return { facts: { status: view.engineStarted || view.finishedJobs > 0 ? 'InProgress' : 'Waiting' } };
  }
  const report = engineReportOf(view.report, memo);
  if (report?.status === 'success' && !view.report.cancelled) return { facts: { status: 'Success', fromCache: report.cached }, report };
  return { facts: { status: 'Failure', errorMessage: failureOf(view.report, report) }, report };
}

function engineReportOf(report: InvestigationReport, memo: CortexJobMemo): EngineReport | undefined {
  if (memo.type === 'responder') return report.responses.find((response) => response.responder === memo.workerName)?.report;
  return report.jobs.find((job) => job.engine === memo.workerName) ?? report.jobs[0];
}

function failureOf(report: InvestigationReport, engine: EngineReport | undefined): string {
  if (engine?.errorMessage) return engine.errorMessage;
  if (engine && engine.status !== 'success') return `the engine ended with ${engine.status}: ${engine.summary}`;
  const response = report.responses[0];
  if (response?.approval.state === 'rejected') {
    return `the response was rejected by ${response.approval.by ?? 'an approver'}${response.approval.reason ? `: ${response.approval.reason}` : ''}`;
  }
  if (response?.approval.state === 'expired') return `nobody approved the response before it expired${response.approval.reason ? ` (${response.approval.reason})` : ''}`;
  return report.errors.join('; ') || 'the job ran no engine';
}

/** The job as Cortex's job routes answer it. */
export function jobJson(state: CortexJobState): Record<string, unknown> {
  return cortexJob(state.memo, state.facts);
}

/** Past this size an engine's output.json is not read into a report. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** Cortex's `report` field: the words for a job not done, the failure, or the success with its output. */
export async function reportJson(state: CortexJobState, blobs: BlobStore): Promise<unknown> {
  const { status } = state.facts;
  const words: Partial<Record<CortexJobStatus, string>> = { Waiting: 'Waiting', InProgress: 'Running', Deleted: 'Deleted' };
  if (words[status]) return words[status];
  if (status === 'Failure' || !state.report) return { errorMessage: state.facts.errorMessage ?? 'the job failed', input: null, success: false };
  const { full, operations } = await outputOf(state.report, blobs);
  return {
    summary: { taxonomies: cortexTaxonomies(state.report.taxonomies) },
    full,
    success: true,
    artifacts: (await artifactsOf(state.report, blobs)).map((artifact) => cortexArtifact(artifact, state.memo.tlp)),
    operations,
  };
}

/** `full` and `operations` from a cortex engine's output.json; another protocol's result is referenced. */
async function outputOf(report: EngineReport, blobs: BlobStore): Promise<{ full: Record<string, unknown>; operations: unknown[] }> {
  const result = report.result;
  const referenced = { full: { summary: report.summary, ...(result ? { result: { sha256: result.sha256, size: result.size, filename: result.filename } } : {}) }, operations: [] };
  if (!result || result.contentType !== 'application/json' || result.size > MAX_OUTPUT_BYTES) return referenced;
  let parsed: unknown;
  try {
    parsed = JSON.parse((await blobs.read(result.sha256)).toString('utf8'));
  } catch {
    return referenced;
  }
  if (!parsed || typeof parsed !== 'object' || !Object.hasOwn(parsed, 'success')) return referenced;
  const output = parsed as { full?: unknown; operations?: unknown };
  const full = output.full && typeof output.full === 'object' && !Array.isArray(output.full) ? output.full as Record<string, unknown> : { value: output.full ?? null };
  return { full, operations: Array.isArray(output.operations) ? output.operations : [] };
}

/** Every artifact, read back from the blob store when there were more than the report keeps inline. */
export async function artifactsOf(report: EngineReport, blobs: BlobStore): Promise<EngineReport['artifacts']> {
  if (!report.artifactsRef) return report.artifacts;
  try {
    const all = JSON.parse((await blobs.read(report.artifactsRef.sha256)).toString('utf8'));
    return Array.isArray(all) ? all : report.artifacts;
  } catch {
    return report.artifacts;
  }
}

/** A Cortex job as the visibility listing shows it: enough to read its memo without describing it. */
export interface ListedCortexJob {
  id: string;
  memo: CortexJobMemo;
  startedAt?: string;
  closedAt?: string;
}

/**
 * The Cortex jobs, newest first (the visibility store's order), up to `limit`: read page by page, so a
 * caller that stops early reads no further page. Investigations tagged cortex without a job's memo are
 * not Cortex jobs and are passed over.
 */
export async function* listCortexJobs(temporal: DocketClient, limit: number): AsyncGenerator<ListedCortexJob> {
  let pageToken: string | undefined;
  let listed = 0;
  do {
    const page = await temporal.list({ source: 'cortex', pageSize: Math.min(100, limit), pageToken, withMemo: true });
    for (const item of page.investigations) {
      if (listed >= limit) return;
      listed += 1;
      try {
        yield { id: item.id, memo: readMemo(item.id, item.memo), startedAt: item.startedAt, closedAt: item.closedAt };
      } catch (error) {
        if (!(error instanceof CortexRefusal)) throw error;
      }
    }
    pageToken = page.nextPageToken;
  } while (pageToken && listed < limit);
}

/** A blob a Cortex job shows as an attachment: its input file, or a file artifact its analyzer reported. */
export interface CortexAttachment {
  jobId: string;
  sha256: string;
  filename: string;
}

/**
 * The attachment `sha256` is, in the newest Cortex job (of the newest `limit`) that shows it and that
 * a reader of the Cortex API can read: not deleted, and for an artifact, finished with Success, as its
 * report shows it. Undefined when no such job does. Jobs are read `parallel` at a time, newest first,
 * and the search stops at the first batch that finds it: TheHive downloads an artifact right after it
 * read the job's report, so the job is among the first read.
 */
export async function findAttachment(temporal: DocketClient, blobs: BlobStore, sha256: string, limit: number, parallel: number): Promise<CortexAttachment | undefined> {
  let batch: ListedCortexJob[] = [];
  const search = async () => {
    const found = await Promise.all(batch.map((job) => attachmentIn(temporal, blobs, job, sha256)));
    batch = [];
    return found.find((attachment) => attachment !== undefined);
  };
  for await (const job of listCortexJobs(temporal, limit)) {
    batch.push(job);
    if (batch.length < parallel) continue;
    const found = await search();
    if (found) return found;
  }
  return batch.length ? search() : undefined;
}

async function attachmentIn(temporal: DocketClient, blobs: BlobStore, job: ListedCortexJob, sha256: string): Promise<CortexAttachment | undefined> {
  const input = job.memo.attachment?.id === sha256 ? job.memo.attachment : undefined;
  // Only analyzers report artifacts, and only once they ran: a running job is not read for them.
  if (!input && (job.memo.type !== 'analyzer' || !job.closedAt)) return undefined;
  if (input) return (await isDeleted(blobs, job.id)) ? undefined : { jobId: job.id, sha256, filename: input.name };
  const state = await settle(temporal, blobs, job.id, job.memo, job.startedAt, job.closedAt);
  if (state.facts.status !== 'Success' || !state.report) return undefined;
  const artifact = (await artifactsOf(state.report, blobs)).find((candidate) => candidate.file?.sha256 === sha256);
  return artifact?.file ? { jobId: job.id, sha256, filename: artifact.file.filename ?? sha256 } : undefined;
}
