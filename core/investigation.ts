import { z } from 'zod';
import { CortexObjectType, ObservableType } from './engine-manifest';

/** A stored blob, referenced by content hash (claim check): bytes never travel in workflow payloads. */
export const BlobRef = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lower-case hex sha256'),
  size: z.number().int().min(0),
  filename: z.string().max(255).optional(),
  contentType: z.string().max(255).optional(),
});
export type BlobRef = z.infer<typeof BlobRef>;

export const Observable = z.object({
  type: ObservableType,
  data: z.string().min(1).max(8192),
  tags: z.array(z.string().max(128)).max(32).optional(),
});
export type Observable = z.infer<typeof Observable>;

/** Past this many bytes of JSON a TheHive object is refused: it travels in workflow history. */
export const MAX_OBJECT_BYTES = 32_768;

/**
 * One of TheHive's objects (a case, a case observable, an alert, a task, a task log) that a responder
 * acts on, as TheHive sends it to Cortex: the object itself is the responder's `data`.
 */
export const TheHiveObject = z.object({
  dataType: CortexObjectType,
  data: z.record(z.string(), z.unknown()),
}).refine((object) => JSON.stringify(object.data).length <= MAX_OBJECT_BYTES, {
  message: `the object is larger than ${MAX_OBJECT_BYTES} bytes of JSON; send only the fields the responder reads`,
  path: ['data'],
});
export type TheHiveObject = z.infer<typeof TheHiveObject>;

export const Source = z.enum(['http', 'slack', 'event', 'schedule', 'cli', 'cortex']);
export type Source = z.infer<typeof Source>;

export const InvestigationInput = z.object({
  observables: z.array(Observable).max(1000).default([]),
  files: z.array(BlobRef).max(100).default([]),
  text: z.string().max(1_000_000).optional(),
  /** Engines to run; when absent, every analyzer that accepts the observable's type. */
  engines: z.array(z.string()).max(100).optional(),
  /**
   * Responders asked for by name, beside the ones the policy selects: each acts on the given
   * observables it accepts, once a person approves (unless every policy rule naming it says
   * `approval: none`). Entry points take it only from callers with the respond role. With `engines`
   * an empty list, nothing is analyzed first.
   */
  respond: z.array(z.string().min(1).max(100)).max(20).optional(),
  tlp: z.number().int().min(0).max(4).default(2),
  pap: z.number().int().min(0).max(3).default(2),
  source: Source.default('http'),
  force: z.boolean().default(false),
  depth: z.number().int().min(0).max(5).default(1),
  /** Cortex's `message` and `parameters`, handed to every engine job of this investigation. */
  message: z.string().max(10_000).optional(),
  parameters: z.record(z.string(), z.unknown()).refine((value) => JSON.stringify(value).length <= 16_384, 'parameters: at most 16384 bytes of JSON').optional(),
  /**
   * A TheHive object for the responders asked for in `respond` that accept its type (Cortex's
   * `POST /api/responder/<id>/run`); it is acted on as it is, never analyzed.
   */
  object: TheHiveObject.optional(),
  /** Free-form arguments for the engines (the `run <engine> <args>` of chatops). */
  args: z.array(z.string().max(4096)).max(64).optional(),
  /** Drop private and reserved addresses found in text. */
  dropPrivate: z.boolean().default(false),
  /**
   * Where to report besides the console: a webhook URL under DOCKET_WEBHOOK_ALLOW, and a Slack channel
   * of DOCKET_SLACK_CHANNELS (in `thread`, when given), where Docket posts its own message and edits
   * only that (core/notify-targets.ts).
   */
  notify: z.object({
    webhook: z.string().url().optional(),
    slack: z.object({
      channel: z.string().min(1).max(100),
      thread: z.string().regex(/^\d{1,12}\.\d{1,9}$/, 'a Slack message ts such as 1718000000.000100').optional(),
      /** Set by Docket's Slack entry point only: the message it posted for this request, which the workflow edits. */
      message: z.string().max(40).optional(),
      /** Binds `message` to this workflow and channel (infra/slack-client.ts); the API refuses both. */
      seal: z.string().max(100).optional(),
    }).optional(),
  }).optional(),
  /** Who asked, for the audit trail and the report. */
  requester: z.string().max(200).optional(),
});
export type InvestigationInput = z.infer<typeof InvestigationInput>;

/** What one engine is asked to look at: an observable, a stored file, or (responders) a TheHive object. */
export type Subject =
  | { kind: 'observable'; observable: Observable }
  | { kind: 'file'; file: BlobRef }
  | { kind: 'object'; object: TheHiveObject };

export const TaxonomyLevel = z.enum(['info', 'safe', 'suspicious', 'malicious']);
export type TaxonomyLevel = z.infer<typeof TaxonomyLevel>;

export const Taxonomy = z.object({
  level: TaxonomyLevel,
  namespace: z.string(),
  predicate: z.string(),
  value: z.union([z.string(), z.number(), z.boolean()]).transform(String),
});
export type Taxonomy = z.infer<typeof Taxonomy>;

/** `skipped`: the engine applies to the subject's type but did not run on it (TLP, PAP, file type); never a failure. */
export type EngineJobStatus = 'queued' | 'running' | 'success' | 'failure' | 'timeout' | 'error' | 'skipped';

/** The small, payload-safe outcome of one engine run; large output lives in the blob store. */
export interface EngineReport {
  engine: string;
  subject: Subject;
  status: Extract<EngineJobStatus, 'success' | 'failure' | 'timeout' | 'error'>;
  imageId?: string;
  startedAt: string;
  finishedAt: string;
  /** The result bytes (the `file` result, the cortex output.json, or stdout). */
  result?: BlobRef;
  /** Up to 80 bytes of the result or of the error, as Menagerie showed it. */
  summary: string;
  truncated: boolean;
  errorMessage?: string;
  taxonomies: Taxonomy[];
  artifacts: Array<{ type: ObservableType | string; data?: string; file?: BlobRef; message?: string; tags?: string[] }>;
  /** Reused from an earlier run of the same engine, image and config on the same input. */
  cached?: boolean;
  /** All artifacts, when there were more than fit inline (claim check). */
  artifactsRef?: BlobRef;
  /** Container logs (stdout and stderr) kept when the engine failed. */
  logs?: BlobRef;
  /**
   * What the run stored that no field above names: its stdout and stderr, and files of its output
   * folder the protocol did not take (a failed run's unreadable output.json, a file cut at the output
   * limit). Named here so that every blob a run stored belongs to a report; retention removes them
   * with the rest. Past MAX_INLINE_RAW, all of them are in `rawRef` (a JSON list).
   */
  raw?: BlobRef[];
  rawRef?: BlobRef;
  exitCode?: number;
  attempt: number;
}

/**
 * The memo every investigation starts with; the workflow updates both keys, and the gateway reads
 * them to answer `GET /result` without a worker.
 */
export const RECEIVED_MEMO = { phase: 'received', finishedJobs: 0 } as const;

export type InvestigationPhase = 'received' | 'parsing' | 'analyzing' | 'responding' | 'notifying' | 'done';

export interface EngineJobState {
  engine: string;
  subject: string;
  state: EngineJobStatus;
  cached?: boolean;
  /** Why a skipped job did not run. */
  reason?: string;
}

/** An engine that applied to a subject's type and was not run on it, and why (TLP, PAP, file type). */
export interface SkippedEngineJob {
  engine: string;
  subject: Subject;
  reason: string;
}

export type ApprovalState = 'not-required' | 'pending' | 'approved' | 'rejected' | 'expired';

export interface ResponseRecord {
  /** Stable id, used to approve or reject this one response. */
  id: string;
  responder: string;
  /** What the response acts on; for a TheHive object, a label of it (type `other`), the object beside it. */
  observable: Observable;
  object?: TheHiveObject;
  rule: string;
  approval: {
    state: ApprovalState;
    expiresAt?: string;
    by?: string;
    at?: string;
    reason?: string;
  };
  report?: EngineReport;
  /** Why the responder was not run although approved or needing no approval (its maxTlp / maxPap); not a failure. */
  skipped?: string;
}

export interface NotificationRecord {
  target: string;
  state: 'sent' | 'failed';
  detail?: string;
}

export interface InvestigationStatus {
  id: string;
  phase: InvestigationPhase;
  jobs: EngineJobState[];
  verdicts: { bySubject: Record<string, TaxonomyLevel>; overall: TaxonomyLevel };
  responses: ResponseRecord[];
}

export interface InvestigationReport {
  id: string;
  status: 'Success' | 'Fail';
  source: Source;
  startedAt: string;
  finishedAt: string;
  observables: Observable[];
  jobs: EngineReport[];
  /** Engines that applied and were not run, with the reason; they never make an investigation fail. */
  skipped?: SkippedEngineJob[];
  verdicts: { bySubject: Record<string, TaxonomyLevel>; overall: TaxonomyLevel };
  responses: ResponseRecord[];
  notifications: NotificationRecord[];
  cancelled?: boolean;
  errors: string[];
  /**
   * How many distinct observable values (and file hashes) "seen before" searches find this
   * investigation by, of how many it analyzed (core/observable-index.ts): past INDEX_BYTES the rest are not indexed.
   */
  observablesIndexed?: { indexed: number; of: number };
  /** The whole report, when it was too large for workflow history; this copy is trimmed (claim check). */
  reportRef?: BlobRef;
}

/** How many leftover blobs a report names inline (`raw`); more go to `rawRef`. */
export const MAX_INLINE_RAW = 16;
/** Artifacts kept inline in one engine report; the rest live in a blob. */
export const MAX_INLINE_ARTIFACTS = 50;
/** Past this many bytes a report is stored as a blob and only a trimmed copy travels in history. */
export const MAX_REPORT_BYTES = 200_000;

/** A decision on pending approvals: one response by id, or all of them. */
export const Decision = z.object({
  responseId: z.string().optional(),
  by: z.string().min(1).max(200),
  reason: z.string().max(1000).optional(),
});
export type Decision = z.infer<typeof Decision>;

/** Identifies a subject for dedupe and verdicts: `file:<sha256>`, `<type>:<data>`, or `<thehive:type>:<json>`. */
export function subjectKey(subject: Subject): string {
  if (subject.kind === 'file') return `file:${subject.file.sha256}`;
  if (subject.kind === 'object') return `${subject.object.dataType}:${JSON.stringify(subject.object.data)}`;
  return `${subject.observable.type}:${subject.observable.data}`;
}

/** A short, human label of a subject, for logs and status lines. */
export function describeSubject(subject: Subject): string {
  if (subject.kind === 'file') return `file ${subject.file.filename ?? subject.file.sha256.slice(0, 12)}`;
  if (subject.kind === 'object') return objectLabel(subject.object).data;
  return `${subject.observable.type} ${subject.observable.data}`;
}

/** The type a subject is, as manifests' `accepts` name it. */
export function subjectType(subject: Subject): string {
  if (subject.kind === 'file') return 'file';
  if (subject.kind === 'object') return subject.object.dataType;
  return subject.observable.type;
}

/** A TheHive object as an observable label for status lines and approvals: its type and its title, name or id. */
export function objectLabel(object: TheHiveObject): Observable {
  const data = object.data;
  const name = [data.title, data.name, data.data, data._id, data.id].find((value) => typeof value === 'string' && value.trim());
  return { type: 'other', data: `${object.dataType} ${String(name ?? '(untitled)').slice(0, 200)}` };
}

/** One engine run with arguments and environment (CloudPassage's tasks: `run <engine> <args>`, scheduled runs). */
export const TaskInput = z.object({
  engine: z.string().min(1),
  args: z.array(z.string().max(4096)).max(64).default([]),
  /** Container environment: literal values, or `${NAME}` taken from the engine worker's environment. */
  env: z.record(z.string(), z.string()).default({}),
  source: Source.default('cli'),
  notify: InvestigationInput.shape.notify,
  requester: z.string().max(200).optional(),
});
export type TaskInput = z.infer<typeof TaskInput>;

export interface TaskReport {
  id: string;
  engine: string;
  status: 'Success' | 'Fail';
  source: Source;
  startedAt: string;
  finishedAt: string;
  report?: EngineReport;
  notifications: NotificationRecord[];
  errors: string[];
}
