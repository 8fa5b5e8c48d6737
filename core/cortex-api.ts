import { z } from 'zod';
import { CortexObjectType, type EngineManifest, ObservableType } from './engine-manifest';
import { type EngineReport, MAX_OBJECT_BYTES, type Taxonomy } from './investigation';
import { parseDuration } from './units';

/**
 * TheHive Cortex's REST API as Docket answers it under `/api` (TheHive 5 and cortex4py are its
 * clients): the JSON shapes of workers (analyzers, responders), jobs, reports and artifacts, the
 * query language of `_search`, ranges and sorts. Pure: the gateway reads Temporal and the blob store
 * and hands the facts in.
 */

// ------------------------------------------------------------------------------ workers

/** Cortex names a worker definition `<name>_<version>` with dots made underscores (Abuse_Finder_3_0); Docket's ids are the same. */
export function cortexWorkerId(manifest: Pick<EngineManifest, 'name' | 'version'>): string {
  return `${manifest.name}_${manifest.version}`.replace(/\./g, '_');
}

const isObjectType = (type: string) => CortexObjectType.safeParse(type).success;

/**
 * The data types a worker shows. An analyzer: the observable types it accepts. A responder: the
 * TheHive objects it accepts, and `thehive:case_artifact` when it acts on observables (it then
 * receives the case observable's own type and value), which is how TheHive looks responders up.
 */
export function cortexDataTypes(manifest: Pick<EngineManifest, 'kind' | 'accepts'>): string[] {
  const accepts: string[] = [...manifest.accepts];
  if (manifest.kind === 'analyzer') return accepts.filter((type) => !isObjectType(type));
  const objects = accepts.filter(isObjectType);
  if (accepts.some((type) => !isObjectType(type)) && !objects.includes('thehive:case_artifact')) objects.push('thehive:case_artifact');
  return objects;
}

/** A worker as Cortex's `/api/analyzer` and `/api/responder` answer it (no configuration: it may hold secrets). */
export function cortexWorker(manifest: EngineManifest): Record<string, unknown> {
  const id = cortexWorkerId(manifest);
  const minutes = (ms: number) => Math.ceil(ms / 60_000);
  return {
    id,
    _id: id,
    _type: 'worker',
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    author: manifest.author ?? '',
    url: manifest.url ?? '',
    license: manifest.license ?? '',
    dataTypeList: cortexDataTypes(manifest),
    workerDefinitionId: id,
    [manifest.kind === 'analyzer' ? 'analyzerDefinitionId' : 'responderDefinitionId']: id,
    baseConfig: manifest.name,
    dockerImage: manifest.image,
    jobCache: manifest.kind === 'analyzer' ? minutes(manifest.cache) : null,
    jobTimeout: minutes(manifest.timeout),
    maxTlp: manifest.maxTlp ?? 4,
    maxPap: manifest.maxPap ?? 3,
    type: manifest.kind,
  };
}

/** `/api/analyzerdefinition`: what Cortex's catalog says of each analyzer. */
export function cortexDefinition(manifest: EngineManifest): Record<string, unknown> {
  return {
    id: cortexWorkerId(manifest),
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    dataTypeList: cortexDataTypes(manifest),
    author: manifest.author ?? '',
    url: manifest.url ?? '',
    license: manifest.license ?? '',
    baseConfig: manifest.name,
    configurationItems: (manifest.configItems ?? []).map((item) => ({
      name: item.name, description: item.description ?? '', type: item.type, multi: item.multi, required: item.required,
      ...(item.default === undefined ? {} : { defaultValue: item.default }),
    })),
    dockerImage: manifest.image,
  };
}

/** Cortex's roles for a Docket key: respond runs responders, which Cortex allows to `analyze`; admin is `orgadmin`. */
export function cortexRoles(role: string): string[] {
  if (role === 'admin') return ['read', 'analyze', 'orgadmin'];
  if (role === 'analyze' || role === 'respond') return ['read', 'analyze'];
  return ['read'];
}

// ------------------------------------------------------------------------------ requests

const Tlp = z.coerce.number().int().min(0).max(4);
const Pap = z.coerce.number().int().min(0).max(3);
const Parameters = z.record(z.string(), z.unknown())
  .refine((value) => JSON.stringify(value).length <= 16_384, 'at most 16384 bytes of JSON');

/** `POST /api/analyzer/<id>/run`, as JSON or as the `_json` part beside an `attachment` (or cortex4py's `data`) file. */
export const AnalyzerRun = z.object({
  dataType: z.string().min(1).max(100),
  data: z.string().min(1).max(8192).optional(),
  tlp: Tlp.default(2),
  pap: Pap.default(2),
  message: z.string().max(10_000).default(''),
  parameters: Parameters.default({}),
  label: z.string().max(200).optional(),
  force: z.union([z.boolean(), z.enum(['true', 'false', '1', '0'])]).optional(),
});
export type AnalyzerRun = z.infer<typeof AnalyzerRun>;

/** `POST /api/responder/<id>/run`: TheHive's object as `data`, its type as `dataType` (TheHive 5's InputAction). */
export const ResponderRun = z.object({
  dataType: z.string().min(1).max(100),
  data: z.record(z.string(), z.unknown()).refine((value) => JSON.stringify(value).length <= MAX_OBJECT_BYTES, `at most ${MAX_OBJECT_BYTES} bytes of JSON`),
  tlp: Tlp.default(2),
  pap: Pap.default(2),
  message: z.string().max(10_000).default(''),
  parameters: Parameters.default({}),
  label: z.string().max(200).optional(),
});
export type ResponderRun = z.infer<typeof ResponderRun>;

/** `force`, as a query value or a body field: cortex4py sends 1, others true. */
export function isForced(value: unknown): boolean {
  return value === true || value === 'true' || value === '1' || value === 1;
}

/** Why a data type cannot go to this analyzer, or undefined when it can. */
export function refuseAnalyzerDataType(manifest: EngineManifest, dataType: string): string | undefined {
  const accepted = cortexDataTypes(manifest);
  if (accepted.includes(dataType) && ObservableType.safeParse(dataType).success) return undefined;
  return `analyzer ${cortexWorkerId(manifest)} takes ${accepted.join(', ')}, not ${JSON.stringify(dataType)}: send one of those as dataType`;
}

// ------------------------------------------------------------------------------ search

/** `_search` bodies: `{query, range, sort}`; range and sort may come in the query string instead. */
export const SearchBody = z.object({
  query: z.unknown().optional(),
  range: z.string().max(40).optional(),
  sort: z.union([z.string().max(100), z.array(z.string().max(100)).max(10)]).optional(),
}).loose();

export const ListQuery = z.object({
  range: z.string().max(40).optional(),
  sort: z.union([z.string().max(100), z.array(z.string().max(100)).max(10)]).optional(),
});

export class SearchError extends Error {}

type Doc = Record<string, unknown>;

const MAX_QUERY_DEPTH = 16;
const MAX_QUERY_NODES = 200;

/** The query operators of Cortex's `_search` (elastic4play's DSL, as cortex4py's query module writes them). */
const OPERATORS = ['_field/_value', '_and', '_or', '_not', '_any', '_contains', '_in', '_id', '_like', '_wildcard', '_gt', '_gte', '_lt', '_lte', '_between'];

/**
 * Tests one document against a Cortex query. A field equals a value, or holds it when it is a list
 * (`Eq('dataTypeList', 'ip')`); `_contains` is "the field is present", as elastic4play reads it.
 * Throws SearchError, naming what is wrong, for a query it cannot read.
 */
export function matchesQuery(query: unknown, doc: Doc): boolean {
  const budget = { nodes: 0 };
  return evaluate(query ?? {}, doc, 0, budget);
}

function evaluate(query: unknown, doc: Doc, depth: number, budget: { nodes: number }): boolean {
  budget.nodes += 1;
  if (depth > MAX_QUERY_DEPTH || budget.nodes > MAX_QUERY_NODES) {
    throw new SearchError(`the query is nested deeper than ${MAX_QUERY_DEPTH} or has more than ${MAX_QUERY_NODES} parts`);
  }
  if (!query || typeof query !== 'object' || Array.isArray(query)) throw new SearchError(`a query part must be an object, not ${JSON.stringify(query)?.slice(0, 80)}`);
  const q = query as Doc;
  const keys = Object.keys(q);
  if (!keys.length || has(q, '_any')) return true;
  const each = (list: unknown) => {
    if (!Array.isArray(list)) throw new SearchError('_and and _or take a list of queries');
    return list;
  };
  if (has(q, '_and')) return each(q._and).every((part) => evaluate(part, doc, depth + 1, budget));
  if (has(q, '_or')) return each(q._or).some((part) => evaluate(part, doc, depth + 1, budget));
  if (has(q, '_not')) return !evaluate(q._not, doc, depth + 1, budget);
  if (has(q, '_field')) return valuesOf(doc, fieldName(q._field)).some((value) => same(value, q._value));
  if (has(q, '_contains')) return valuesOf(doc, fieldName(q._contains)).length > 0;
  if (has(q, '_id')) return doc.id === q._id;
  if (has(q, '_in')) {
    const spec = object(q._in, '_in');
    if (!Array.isArray(spec._values)) throw new SearchError('_in takes {"_field": name, "_values": [...]}');
    return valuesOf(doc, fieldName(spec._field)).some((value) => (spec._values as unknown[]).some((wanted) => same(value, wanted)));
  }
  if (has(q, '_like') || has(q, '_wildcard')) {
    const spec = object(q._like ?? q._wildcard, has(q, '_like') ? '_like' : '_wildcard');
    const pattern = String(spec._value ?? '');
    const test = has(q, '_like')
      ? (value: string) => value.toLowerCase().includes(pattern.toLowerCase())
      : (value: string) => globToRegExp(pattern).test(value);
    return valuesOf(doc, fieldName(spec._field)).some((value) => typeof value === 'string' && test(value));
  }
  if (has(q, '_between')) {
    const spec = object(q._between, '_between');
    return valuesOf(doc, fieldName(spec._field)).some((value) => compare(value, spec._from) >= 0 && compare(value, spec._to) < 0);
  }
  for (const [operator, accept] of [['_gt', (c: number) => c > 0], ['_gte', (c: number) => c >= 0], ['_lt', (c: number) => c < 0], ['_lte', (c: number) => c <= 0]] as const) {
    if (!has(q, operator)) continue;
    const spec = object(q[operator], operator);
    const [field] = Object.keys(spec);
    if (!field) throw new SearchError(`${operator} takes {"<field>": value}`);
    return valuesOf(doc, field).some((value) => accept(compare(value, spec[field])));
  }
  throw new SearchError(`query operator ${JSON.stringify(keys[0]).slice(0, 60)} is not supported; use ${OPERATORS.join(', ')}`);
}

function has(object: Doc, key: string): boolean {
  return Object.hasOwn(object, key);
}

function object(value: unknown, what: string): Doc {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new SearchError(`${what} takes an object`);
  return value as Doc;
}

function fieldName(value: unknown): string {
  if (typeof value !== 'string' || !value) throw new SearchError('a query names its field with a string');
  return value;
}

/** A document's values for a field: its own property only (so `constructor` names nothing), a list spread out. */
function valuesOf(doc: Doc, field: string): unknown[] {
  if (!has(doc, field)) return [];
  const value = doc[field];
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function same(value: unknown, wanted: unknown): boolean {
  if (typeof value === 'number' && typeof wanted === 'string') return String(value) === wanted;
  return value === wanted;
}

function compare(value: unknown, other: unknown): number {
  if (typeof value === 'number' && typeof other === 'number') return value - other;
  return String(value).localeCompare(String(other));
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.slice(0, 200).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/**
 * Cortex's `range`: `all`, or `<from>-<to>` (from inclusive, to exclusive: `0-10` is the first ten),
 * or a single `<from>`; `fallback` when absent. Throws SearchError for anything else.
 */
export function applyRange<T>(items: T[], range: string | undefined, fallback: string): T[] {
  const text = (range ?? fallback).trim();
  if (text === 'all') return items;
  const parts = /^(\d{1,6})(?:-(\d{1,6}))?$/.exec(text);
  if (!parts) throw new SearchError(`range ${JSON.stringify(text.slice(0, 40))} is not "all", "<from>-<to>" such as 0-10, or "<from>"`);
  const from = Number(parts[1]);
  const to = parts[2] === undefined ? from + 10 : Number(parts[2]);
  if (to < from) throw new SearchError(`range ${text}: the end comes before the start`);
  return items.slice(from, to);
}

/** Cortex's `sort`: field names, each with `+` (ascending, the default) or `-` (descending). */
export function applySort(items: Doc[], sort: string | string[] | undefined): Doc[] {
  const fields = (Array.isArray(sort) ? sort : sort ? [sort] : []).map((spec) => {
    const descending = spec.startsWith('-');
    const field = spec.replace(/^[+-]/, '');
    if (!/^[A-Za-z_][A-Za-z0-9_.]{0,60}$/.test(field)) throw new SearchError(`sort ${JSON.stringify(spec.slice(0, 60))} is not a field name with an optional + or -`);
    return { field, descending };
  });
  if (!fields.length) return items;
  return [...items].sort((a, b) => {
    for (const { field, descending } of fields) {
      const left = valuesOf(a, field)[0];
      const right = valuesOf(b, field)[0];
      if (left === right) continue;
      if (left === undefined) return 1;
      if (right === undefined) return -1;
      const order = compare(left, right);
      if (order) return descending ? -order : order;
    }
    return 0;
  });
}

/** The longest a `waitreport` waits, whatever `atMost` asks: a request must not hold a connection for ever. */
export const MAX_WAIT_MS = 10 * 60_000;

const SCALA_UNITS: Record<string, number> = {
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  ms: 1, milli: 1, millis: 1, millisecond: 1, milliseconds: 1,
};

/**
 * `atMost`, as Scala's Duration prints it (TheHive sends `1 minute`, cortex4py `Inf`) or as Docket's
 * durations read (`90s`): milliseconds, capped at MAX_WAIT_MS; undefined when it cannot be read.
 */
export function parseAtMost(text: string | undefined): number | undefined {
  if (text === undefined) return 60_000;
  const trimmed = text.trim();
  if (/^(inf|infinite|duration\.inf)$/i.test(trimmed)) return MAX_WAIT_MS;
  const scala = /^(\d{1,9})\s*([a-z]+)$/i.exec(trimmed);
  const unit = scala ? SCALA_UNITS[scala[2].toLowerCase()] : undefined;
  const ms = scala && unit ? Number(scala[1]) * unit : parseDuration(trimmed);
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return undefined;
  return Math.min(ms, MAX_WAIT_MS);
}

// ------------------------------------------------------------------------------ jobs

export type CortexJobStatus = 'Waiting' | 'InProgress' | 'Success' | 'Failure' | 'Deleted';

/** What a Cortex job's workflow keeps in its memo (key `cortex`) at start, so a job reads without its history. */
export const CortexJobMemo = z.object({
  workerId: z.string(),
  workerName: z.string(),
  type: z.enum(['analyzer', 'responder']),
  dataType: z.string(),
  data: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  attachment: z.object({ id: z.string(), name: z.string(), size: z.number(), contentType: z.string(), hashes: z.array(z.string()) }).optional(),
  tlp: z.number(),
  pap: z.number(),
  message: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  label: z.string().optional(),
  createdBy: z.string(),
});
export type CortexJobMemo = z.infer<typeof CortexJobMemo>;

export const CORTEX_MEMO_KEY = 'cortex';

/** Where Docket stands on a job, as the gateway read it from Temporal. */
export interface CortexJobFacts {
  id: string;
  status: CortexJobStatus;
  startedAt?: string;
  closedAt?: string;
  errorMessage?: string;
  fromCache?: boolean;
}

/** Cortex's organization field: Docket has one. */
export const CORTEX_ORGANIZATION = 'docket';

const millis = (iso: string | undefined) => (iso ? Date.parse(iso) : undefined);

/** A job as Cortex's `/api/job/<id>` answers it (Job.toJson, with elastic4play's entity fields). */
export function cortexJob(memo: CortexJobMemo, facts: CortexJobFacts): Record<string, unknown> {
  const created = millis(facts.startedAt) ?? 0;
  const job: Record<string, unknown> = {
    id: facts.id,
    _id: facts.id,
    _type: 'job',
    _routing: facts.id,
    _parent: null,
    _version: 1,
    createdBy: memo.createdBy,
    createdAt: created,
    workerId: memo.workerId,
    workerName: memo.workerName,
    workerDefinitionId: memo.workerId,
    analyzerId: memo.workerId,
    analyzerName: memo.workerName,
    analyzerDefinitionId: memo.workerId,
    organization: CORTEX_ORGANIZATION,
    status: facts.status,
    dataType: memo.dataType,
    tlp: memo.tlp,
    pap: memo.pap,
    message: memo.message,
    parameters: memo.parameters,
    type: memo.type,
    date: created,
  };
  if (memo.data !== undefined) job.data = memo.data;
  if (memo.attachment) job.attachment = memo.attachment;
  if (memo.label) job.label = memo.label;
  if (facts.status !== 'Waiting' && facts.startedAt) job.startDate = created;
  if (facts.closedAt && (facts.status === 'Success' || facts.status === 'Failure')) {
    job.endDate = millis(facts.closedAt);
    job.updatedAt = millis(facts.closedAt);
    job.updatedBy = memo.createdBy;
  }
  if (facts.status === 'Failure' && facts.errorMessage) job.errorMessage = facts.errorMessage;
  if (facts.fromCache) job.fromCache = true;
  return job;
}

/** One artifact an engine reported, as Cortex shows it in a report (and, with entity fields, in `/artifacts`). */
export function cortexArtifact(artifact: EngineReport['artifacts'][number], tlp: number): Record<string, unknown> {
  const common = { dataType: artifact.type, message: artifact.message ?? null, tags: artifact.tags ?? [], tlp };
  if (artifact.file) {
    const { file } = artifact;
    return {
      ...common,
      attachment: { contentType: file.contentType ?? 'application/octet-stream', id: file.sha256, name: file.filename ?? file.sha256, size: file.size, hashes: [file.sha256] },
    };
  }
  return { ...common, data: artifact.data ?? '' };
}

/** Cortex's summary taxonomies: the level, namespace, predicate and value an engine reported. */
export function cortexTaxonomies(taxonomies: Taxonomy[]): Record<string, unknown>[] {
  return taxonomies.map((taxonomy) => ({ level: taxonomy.level, namespace: taxonomy.namespace, predicate: taxonomy.predicate, value: taxonomy.value }));
}

/** What a Cortex error's `type` is for an HTTP status, as Cortex's ErrorHandler names them. */
export function cortexErrorType(status: number): string {
  if (status === 401) return 'AuthenticationError';
  if (status === 403) return 'AuthorizationError';
  if (status === 404) return 'NotFoundError';
  if (status === 413) return 'PayloadTooLarge';
  if (status === 429) return 'RateLimitExceeded';
  if (status === 409) return 'Conflict';
  if (status >= 500) return 'InternalError';
  return 'BadRequest';
}
