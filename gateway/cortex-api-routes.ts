import { randomUUID } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type DocketClient, RequestRefused } from '../contract/client';
import { cortexJobId } from '../contract/messages';
import {
  AnalyzerRun, applyRange, applySort, CORTEX_MEMO_KEY, cortexArtifact, cortexDataTypes, cortexDefinition, cortexErrorType, type CortexJobMemo, cortexRoles,
  cortexWorker, cortexWorkerId, isForced, ListQuery, matchesQuery, parseAtMost, refuseAnalyzerDataType, ResponderRun, SearchBody, SearchError,
} from '../core/cortex-api';
import { describeIssues, type EngineManifest, ObservableType } from '../core/engine-manifest';
import { type BlobRef, InvestigationInput } from '../core/investigation';
import { formatBytes } from '../core/units';
import { version } from '../package.json';
import { BlobNotFoundError, BlobTooLargeError, type BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import {
  artifactsOf, CortexRefusal, findAttachment, jobJson, listCortexJobs, type ListedCortexJob, markDeleted, readJob, reportJson, settle,
} from './cortex-jobs';
import { ApiError } from './errors';
import { binaryFile, errorJson, jsonSchema, multipartSchema, requestSchema } from './schemas';
import { sanitizeFilename } from './uploads';

/**
 * TheHive Cortex's REST API under `/api`, so TheHive 5 and cortex4py can use Docket as their Cortex:
 * analyzers and responders are Docket's engines, every job is an investigation started through
 * DocketClient, and errors come in Cortex's shape (`{"type", "message"}`). Register with prefix `/api`.
 */
export interface CortexApiDeps {
  temporal: DocketClient;
  blobs: BlobStore;
  /** Read per request, so a reload of the engines counts. */
  registry: EngineRegistry;
  /** DOCKET_MAX_WAIT: the longest `waitreport` holds a read, whatever `atMost` asks (10 minutes when absent). */
  maxWaitMs?: number;
}

/** The Cortex version whose API this answers; TheHive reads `versions.Cortex` from /api/status. */
const CORTEX_API_VERSION = '3.1.8';
/** Jobs a `_search` looks through, newest first: visibility is read page by page, so it is bounded. */
const SEARCHED_JOBS = 200;
const READ_PARALLEL = 8;
/** Cortex's attachment ids: Docket's are the blobs' sha256, as every attachment.id it answers. */
const ATTACHMENT_ID = /^[0-9a-f]{64}$/;
const WAIT_POLL_MS = 1000;

const CortexErrorBody = z.object({
  type: z.string().describe('Cortex\'s error type: BadRequest, AuthenticationError, AuthorizationError, NotFoundError, JobNotFoundError, AnalyzerNotFoundError, RateLimitExceeded, ...'),
  message: z.string().describe('what went wrong and what to do about it'),
}).meta({ description: 'An error, in Cortex\'s shape' });

const STATUS_MEANING: Record<number, string> = {
  400: 'the request is not valid: the message names the field and what to send',
  401: 'no key, or a key that is not valid: send "Authorization: Bearer <key>"',
  403: "the key's role is not enough (responders need respond), or a page on another site sent the request",
  404: 'no analyzer, responder or job by that id',
  413: 'the attachment is larger than the analyzer\'s sizelimit; nothing was kept',
  415: 'a content type this route does not take',
  429: 'too many requests this minute',
  500: 'Docket failed; it has been logged',
  503: 'a dependency Docket needs is not available',
};

/** The error answers of a Cortex route, in Cortex's error shape. */
function cortexErrors(...statuses: number[]): Record<string, Record<string, unknown>> {
  const shape = jsonSchema(CortexErrorBody);
  const answers: Record<string, Record<string, unknown>> = {};
  for (const status of [...new Set([...statuses, 401, 403, 429, 500, 503])].sort()) {
    answers[status] = { ...shape, description: STATUS_MEANING[status] ?? 'an error' };
  }
  // A request line and headers over Node's 16 KiB are refused before routing: in Cortex's shape when the
  // refused bytes began with the request line (the path is read from them), else in Docket's.
  answers[431] = { oneOf: [shape, errorJson], description: 'the request line and headers are larger than 16 KiB; send long values in the body' };
  return { ...answers, '4xx': shape, '5xx': shape };
}

const Worker = z.looseObject({
  id: z.string(), name: z.string(), version: z.string(), description: z.string(), dataTypeList: z.array(z.string()),
  maxTlp: z.number(), maxPap: z.number(), type: z.string(),
});
const Job = z.looseObject({
  id: z.string(), status: z.enum(['Waiting', 'InProgress', 'Success', 'Failure', 'Deleted']), workerId: z.string(), workerName: z.string(),
  dataType: z.string(), organization: z.string(), type: z.string(), date: z.number(),
});
const Artifact = z.looseObject({ id: z.string(), dataType: z.string(), tlp: z.number() });

const IdParams = z.object({ id: z.string().min(1).max(200).describe('the analyzer, responder or job id') });
const TypeParams = z.object({ dataType: z.string().min(1).max(100).describe('a Cortex data type: ip, domain, file, ... or thehive:case_artifact, ...') });
const RunQuery = z.object({ force: z.enum(['true', 'false', '1', '0']).optional().describe('true (or 1) skips the result cache') });
const WaitQuery = z.object({ atMost: z.string().max(40).optional().describe('how long to wait: 1minute, 30 seconds, 90s, Inf (at most 10 minutes, or the gateway\'s DOCKET_MAX_WAIT when shorter); 1 minute by default') });
const DatastoreParams = z.object({ id: z.string().min(1).max(200).describe('the attachment id: a job\'s attachment.id, or a file artifact\'s attachment.id in its report (a sha256)') });
const DatastoreQuery = z.object({ name: z.string().max(1000).optional().describe('the file name to download it as (Cortex\'s ?name=); the attachment\'s own name by default') });
const RunMultipart = z.object({
  attachment: binaryFile.optional().describe('the file to analyze (cortex4py and TheHive name it data)'),
  data: binaryFile.optional(),
  _json: z.string().describe('the job as JSON: {"dataType":"file","tlp":2,"pap":2,"message":"","parameters":{}}'),
});

const tags = ['cortex'];
const params = requestSchema(IdParams, 'path');

const schemas = {
  status: { tags, summary: 'Cortex status: versions and configuration (TheHive reads versions.Cortex)', response: { 200: jsonSchema(z.looseObject({ versions: z.looseObject({ Cortex: z.string() }) })), ...cortexErrors() } },
  user: { tags, summary: 'The caller as a Cortex user (TheHive checks its key with it); roles are Cortex\'s', response: { 200: jsonSchema(z.looseObject({ id: z.string(), roles: z.array(z.string()) })), ...cortexErrors() } },
  list: (what: string) => ({ tags, summary: `Every ${what}, in Cortex's shape`, querystring: requestSchema(ListQuery, 'query'), response: { 200: jsonSchema(z.array(Worker)), ...cortexErrors(400) } }),
  search: (what: string) => ({
    tags, summary: `${what} matching a Cortex query (Eq, And, Or, Not, Contains, In, Like, ...), with range and sort`,
    querystring: requestSchema(ListQuery, 'query'), body: requestSchema(SearchBody.default({}), 'search'),
    response: { 200: jsonSchema(z.array(what === 'Jobs' ? Job : Worker)), ...cortexErrors(400, 413, 415) },
  }),
  get: (what: string) => ({ tags, summary: `One ${what} by its id (<name>_<version>)`, params, response: { 200: jsonSchema(Worker), ...cortexErrors(400, 404) } }),
  byType: (what: string) => ({ tags, summary: `The ${what}s that take a data type`, params: requestSchema(TypeParams, 'path'), response: { 200: jsonSchema(z.array(Worker)), ...cortexErrors(400) } }),
  definitions: { tags, summary: 'The analyzer definitions (Cortex\'s catalog)', response: { 200: jsonSchema(z.array(z.looseObject({ id: z.string(), name: z.string() }))), ...cortexErrors() } },
  runAnalyzer: {
    tags, summary: 'Run an analyzer on an observable (JSON) or a file (multipart: attachment or data, and _json); the job is an investigation',
    params, querystring: requestSchema(RunQuery, 'query'),
    body: {
      content: {
        'application/json': { schema: requestSchema(AnalyzerRun, 'job', { replace: false }) },
        'multipart/form-data': { schema: multipartSchema(RunMultipart) },
      },
    },
    response: { 200: jsonSchema(Job), ...cortexErrors(400, 404, 413, 415) },
  },
  runResponder: {
    tags, summary: 'Run a responder on a TheHive object (thehive:case, thehive:case_artifact, thehive:alert, thehive:case_task, thehive:case_task_log); it waits for approval where the policy says',
    params, body: requestSchema(ResponderRun, 'job'),
    response: { 200: jsonSchema(Job), ...cortexErrors(400, 404, 413, 415) },
  },
  job: { tags, summary: 'One job', params, response: { 200: jsonSchema(Job), ...cortexErrors(400, 404) } },
  report: { tags, summary: 'One job with its report (summary.taxonomies, full, artifacts, operations, or errorMessage)', params, response: { 200: jsonSchema(Job), ...cortexErrors(400, 404) } },
  waitReport: {
    tags, summary: 'One job with its report, once it is done or atMost has passed', params, querystring: requestSchema(WaitQuery, 'query'),
    response: { 200: jsonSchema(Job), ...cortexErrors(400, 404) },
  },
  artifacts: { tags, summary: 'The artifacts a job\'s engine reported', params, response: { 200: jsonSchema(z.array(Artifact)), ...cortexErrors(400, 404) } },
  datastore: {
    tags, summary: 'Download an attachment of a Cortex job: its input file, or a file artifact its analyzer reported (TheHive imports file artifacts through it)',
    params: requestSchema(DatastoreParams, 'path'), querystring: requestSchema(DatastoreQuery, 'query'),
    response: {
      200: { description: 'the attachment\'s bytes, as a download named by content-disposition', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
      ...cortexErrors(400, 404),
    },
  },
  deleteJob: { tags, summary: 'Delete a job: a running one is cancelled; it then answers as Deleted', params, response: { 204: { type: 'null', description: 'deleted' }, ...cortexErrors(400, 404) } },
};

/** Cortex's error answer; every refusal of the Cortex routes goes through it. */
function sendError(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply.status(status).send({ type, message });
}

export async function cortexApiRoutes(app: FastifyInstance, deps: CortexApiDeps): Promise<void> {
  app.setErrorHandler((error: FastifyError | ApiError | CortexRefusal, request, reply) => {
    if (error instanceof CortexRefusal) return sendError(reply, error.statusCode, error.type, error.message);
    if (error instanceof SearchError) return sendError(reply, 400, 'SearchError', error.message);
    if (error instanceof ApiError || error instanceof RequestRefused) return sendError(reply, error.statusCode, cortexErrorType(error.statusCode), error.message);
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return sendError(reply, status, cortexErrorType(status), error.message);
    request.log.error({ err: error }, 'Cortex API request failed');
    return sendError(reply, 500, 'InternalError', `Docket could not complete this request (${error.message.split('\n')[0]}); it has been logged, try again`);
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 404, 'NotFoundError', `no route ${request.method} ${request.url.split('?')[0]}; the Cortex API Docket answers is listed in the README`);
  });

  const workers = (kind: EngineManifest['kind']) => deps.registry.list().map((engine) => engine.manifest).filter((manifest) => manifest.kind === kind);
  const findWorker = (kind: EngineManifest['kind'], id: string) => {
    const found = workers(kind).find((manifest) => cortexWorkerId(manifest) === id);
    if (found) return found;
    const known = workers(kind).map(cortexWorkerId).sort().join(', ') || 'none';
    throw new CortexRefusal(404, kind === 'analyzer' ? 'AnalyzerNotFoundError' : 'ResponderNotFoundError', `${kind} ${id} not found; the ${kind}s are: ${known}`);
  };
  const listWorkers = (kind: EngineManifest['kind'], query: unknown, range: string | undefined, sort: string | string[] | undefined, reply: FastifyReply) => {
    const all = workers(kind).map(cortexWorker).filter((worker) => matchesQuery(query, worker));
    reply.header('x-total', String(all.length));
    return applyRange(applySort(all, sort), range, 'all');
  };

  app.get('/status', { schema: schemas.status }, async () => ({
    versions: { Cortex: CORTEX_API_VERSION, Docket: version },
    config: { protectDownloadsWith: 'malware', authType: ['key'], capabilities: ['authByKey'], ssoAutoLogin: false },
  }));

  app.get('/user/current', { config: { role: 'read' }, schema: schemas.user }, async (request) => {
    const caller = request.caller;
    const id = caller?.kind === 'key' ? caller.key.name : 'anonymous';
    return {
      id, _id: id, _type: 'user', name: id, roles: cortexRoles(caller?.role ?? 'read'), organization: 'docket', status: 'Ok',
      hasKey: caller?.kind === 'key', hasPassword: false,
    };
  });

  for (const kind of ['analyzer', 'responder'] as const) {
    const plural = kind === 'analyzer' ? 'Analyzers' : 'Responders';
    app.get<{ Querystring: z.infer<typeof ListQuery> }>(`/${kind}`, { config: { role: 'read' }, schema: schemas.list(kind) }, async (request, reply) => (
      listWorkers(kind, {}, request.query.range, request.query.sort, reply)
    ));
    app.post<{ Querystring: z.infer<typeof ListQuery>; Body: z.infer<typeof SearchBody> }>(`/${kind}/_search`, { config: { role: 'read' }, schema: schemas.search(plural) }, async (request, reply) => {
      const body = request.body ?? {};
      return listWorkers(kind, body.query, body.range ?? request.query.range, body.sort ?? request.query.sort, reply);
    });
    app.get<{ Params: { id: string } }>(`/${kind}/:id`, { config: { role: 'read' }, schema: schemas.get(kind) }, async (request) => cortexWorker(findWorker(kind, request.params.id)));
    app.get<{ Params: { dataType: string } }>(`/${kind}/type/:dataType`, { config: { role: 'read' }, schema: schemas.byType(kind) }, async (request, reply) => (
      listWorkers(kind, { _field: 'dataTypeList', _value: request.params.dataType }, 'all', undefined, reply)
    ));
  }

  app.get('/analyzerdefinition', { config: { role: 'admin' }, schema: schemas.definitions }, async () => workers('analyzer').map(cortexDefinition));

  app.post<{ Params: { id: string }; Querystring: z.infer<typeof RunQuery> }>('/analyzer/:id/run', { config: { role: 'analyze' }, schema: schemas.runAnalyzer }, async (request) => {
    const manifest = findWorker('analyzer', request.params.id);
    const { run, file } = request.isMultipart() ? await readRunParts(request, manifest, deps.blobs) : { run: parseRun(AnalyzerRun, request.body), file: undefined };
    const dataType = file ? 'file' : run.dataType;
    if (file && run.dataType !== 'file') throw refusal(`a job with an attachment has dataType file, not ${JSON.stringify(run.dataType)}`);
    if (!file && dataType === 'file') throw refusal('dataType file needs the file: send multipart/form-data with the file in an "attachment" (or "data") part and the job in a "_json" part');
    if (!file && !run.data) throw refusal('data is missing: send the observable\'s value as "data" (a file goes as a multipart attachment)');
    const refused = refuseAnalyzerDataType(manifest, dataType);
    if (refused) throw refusal(refused);
    const input = parseInput({
      ...(file ? { files: [file] } : { observables: [{ type: ObservableType.parse(dataType), data: run.data! }] }),
      engines: [manifest.name], depth: 0, tlp: run.tlp, pap: run.pap, force: isForced(request.query.force) || isForced(run.force),
      message: run.message || undefined, parameters: run.parameters, source: 'cortex', requester: requester(request),
    });
    const memo: CortexJobMemo = {
      workerId: cortexWorkerId(manifest), workerName: manifest.name, type: 'analyzer', dataType, tlp: run.tlp, pap: run.pap,
      message: run.message, parameters: run.parameters, label: run.label, createdBy: requester(request),
      ...(file
        ? { attachment: { id: file.sha256, name: file.filename ?? 'attachment', size: file.size, contentType: file.contentType ?? 'application/octet-stream', hashes: [file.sha256] } }
        : { data: run.data }),
    };
    return start(input, memo, request);
  });

  app.post<{ Params: { id: string } }>('/responder/:id/run', { config: { role: 'respond' }, schema: schemas.runResponder }, async (request) => {
    const manifest = findWorker('responder', request.params.id);
    const run = parseRun(ResponderRun, request.body);
    if (!cortexDataTypes(manifest).includes(run.dataType)) {
      throw refusal(`responder ${cortexWorkerId(manifest)} acts on ${cortexDataTypes(manifest).join(', ')}, not ${JSON.stringify(run.dataType)}`);
    }
    const base = { engines: [], respond: [manifest.name], depth: 0, tlp: run.tlp, pap: run.pap, message: run.message || undefined, parameters: run.parameters, source: 'cortex', requester: requester(request) };
    const input = (manifest.accepts as string[]).includes(run.dataType)
      ? parseInput({ ...base, object: { dataType: run.dataType, data: run.data } })
      : parseInput({ ...base, observables: [caseObservable(manifest, run.data)] });
    const memo: CortexJobMemo = {
      workerId: cortexWorkerId(manifest), workerName: manifest.name, type: 'responder', dataType: run.dataType, data: run.data, tlp: run.tlp, pap: run.pap,
      message: run.message, parameters: run.parameters, label: run.label, createdBy: requester(request),
    };
    return start(input, memo, request);
  });

  async function start(input: InvestigationInput, memo: CortexJobMemo, request: FastifyRequest) {
    const id = cortexJobId(randomUUID());
    await deps.temporal.startInvestigation(input, id, { memo: { [CORTEX_MEMO_KEY]: memo } });
    request.log.info({ id }, 'Cortex job started');
    return jobJson({ memo, facts: { id, status: 'Waiting', startedAt: new Date().toISOString() } });
  }

  app.get<{ Params: { id: string } }>('/job/:id', { config: { role: 'read' }, schema: schemas.job }, async (request) => (
    jobJson(await readJob(deps.temporal, deps.blobs, request.params.id))
  ));

  app.get<{ Params: { id: string } }>('/job/:id/report', { config: { role: 'read' }, schema: schemas.report }, async (request) => {
    const state = await readJob(deps.temporal, deps.blobs, request.params.id);
    return { ...jobJson(state), report: await reportJson(state, deps.blobs) };
  });

  app.get<{ Params: { id: string }; Querystring: z.infer<typeof WaitQuery> }>('/job/:id/waitreport', { config: { role: 'read' }, schema: schemas.waitReport }, async (request) => {
    const waitMs = parseAtMost(request.query.atMost);
    if (waitMs === undefined) throw refusal(`atMost ${JSON.stringify(request.query.atMost)} is not a duration: send 1minute, 30 seconds, 90s or Inf`);
    const deadline = Date.now() + Math.min(waitMs, deps.maxWaitMs ?? waitMs);
    let state = await readJob(deps.temporal, deps.blobs, request.params.id);
    while ((state.facts.status === 'Waiting' || state.facts.status === 'InProgress') && Date.now() < deadline && !request.raw.destroyed) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now()))));
      state = await readJob(deps.temporal, deps.blobs, request.params.id);
    }
    return { ...jobJson(state), report: await reportJson(state, deps.blobs) };
  });

  app.get<{ Params: { id: string } }>('/job/:id/artifacts', { config: { role: 'read' }, schema: schemas.artifacts }, async (request, reply) => {
    const state = await readJob(deps.temporal, deps.blobs, request.params.id);
    const found = state.facts.status === 'Success' && state.report ? await artifactsOf(state.report, deps.blobs) : [];
    reply.header('x-total', String(found.length));
    return found.map((artifact, index) => {
      const id = `${state.facts.id}-${index + 1}`;
      return { id, _id: id, _type: 'artifact', _parent: state.facts.id, createdAt: Date.parse(state.facts.closedAt ?? '') || 0, ...cortexArtifact(artifact, state.memo.tlp) };
    });
  });

  app.delete<{ Params: { id: string } }>('/job/:id', { config: { role: 'analyze' }, schema: schemas.deleteJob }, async (request, reply) => {
    const state = await readJob(deps.temporal, deps.blobs, request.params.id);
    // Marked first: from here on every gateway answers Deleted, even if the cancellation is still on its way.
    await markDeleted(deps.blobs, state.facts.id);
    if (state.facts.status === 'Waiting' || state.facts.status === 'InProgress') {
      await deps.temporal.cancel(state.facts.id, requester(request), 'deleted through the Cortex API').catch((error) => {
        // Finished meanwhile: there is nothing left to stop.
        if (!(error instanceof RequestRefused && error.statusCode === 409)) throw error;
      });
    }
    return reply.status(204).send();
  });

  app.post<{ Querystring: z.infer<typeof ListQuery>; Body: z.infer<typeof SearchBody> }>('/job/_search', { config: { role: 'read' }, schema: schemas.search('Jobs') }, async (request, reply) => {
    const body = request.body ?? {};
    // Refuse an unreadable query before reading any job.
    matchesQuery(body.query, {});
    const jobs = (await recentJobs()).filter((job) => job.status !== 'Deleted' && matchesQuery(body.query, job));
    reply.header('x-total', String(jobs.length));
    return applyRange(applySort(jobs, body.sort ?? request.query.sort), body.range ?? request.query.range, '0-10');
  });

  app.get<{ Params: z.infer<typeof DatastoreParams>; Querystring: z.infer<typeof DatastoreQuery> }>('/datastore/:id', { config: { role: 'read' }, schema: schemas.datastore }, async (request, reply) => {
    const sha256 = request.params.id.toLowerCase();
    if (!ATTACHMENT_ID.test(sha256)) {
      throw refusal(`attachment id ${JSON.stringify(request.params.id.slice(0, 80))} is not a sha256 (64 hexadecimal digits): use the attachment.id a job or its report's artifacts show`);
    }
    const notFound = new CortexRefusal(404, 'NotFoundError', `no Cortex job shows an attachment ${sha256}: use the attachment.id of a job, or of a file artifact in the report of a successful job, that is not deleted`);
    // A blob Docket does not hold answers at once; only one it holds is looked for among the jobs.
    if (!(await deps.blobs.has(sha256))) throw notFound;
    const found = await findAttachment(deps.temporal, deps.blobs, sha256, SEARCHED_JOBS, READ_PARALLEL);
    if (!found) throw notFound;
    let size: number;
    let bytes: Awaited<ReturnType<BlobStore['open']>>;
    try {
      size = await deps.blobs.size(sha256);
      bytes = await deps.blobs.open(sha256);
    } catch (error) {
      // Retention removed it since: the job outlived its blobs.
      if (error instanceof BlobNotFoundError) throw notFound;
      throw error;
    }
    // Until fastify pipes it, nothing listens: a blob removed meanwhile would otherwise end the process.
    bytes.on('error', (error) => request.log.error({ err: error, sha256, job: found.jobId }, 'a Cortex attachment cannot be read'));
    // Always a download of opaque bytes: an artifact's claimed content type must not make a browser render it on Docket's origin.
    reply.header('content-type', 'application/octet-stream');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('content-length', size);
    reply.header('content-disposition', attachmentDisposition(request.query.name ?? found.filename));
    return reply.send(bytes);
  });

  /** The newest Cortex jobs, up to SEARCHED_JOBS, each as Cortex shows it. */
  async function recentJobs(): Promise<Record<string, unknown>[]> {
    const queue: ListedCortexJob[] = [];
    for await (const job of listCortexJobs(deps.temporal, SEARCHED_JOBS)) queue.push(job);
    const jobs: Record<string, unknown>[] = [];
    const lane = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        jobs.push(jobJson(await settle(deps.temporal, deps.blobs, item.id, item.memo, item.startedAt, item.closedAt)));
      }
    };
    await Promise.all(Array.from({ length: READ_PARALLEL }, lane));
    return jobs.sort((a, b) => Number(b.createdAt) - Number(a.createdAt));
  }
}

function refusal(message: string): CortexRefusal {
  return new CortexRefusal(400, 'BadRequest', message);
}

/**
 * `attachment` with the name sanitised: a plain ASCII `filename` for old clients and the UTF-8
 * `filename*` (RFC 6266), so no name can end the header, add a parameter or carry a path.
 */
function attachmentDisposition(name: string): string {
  // A lone surrogate (an engine's JSON may carry one, a cut may leave one) would make encodeURIComponent throw.
  const safe = sanitizeFilename(name).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  const ascii = safe.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(safe).replace(/['()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function requester(request: FastifyRequest): string {
  return request.caller?.kind === 'key' ? request.caller.key.name : 'anonymous';
}

function parseRun<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw refusal(`the job is not valid: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function parseInput(value: Record<string, unknown>): InvestigationInput {
  const parsed = InvestigationInput.safeParse(value);
  if (!parsed.success) throw refusal(`the job is not valid: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** A case observable (TheHive's `thehive:case_artifact`) as the observable a Docket responder acts on. */
function caseObservable(manifest: EngineManifest, data: Record<string, unknown>) {
  const type = ObservableType.safeParse(data.dataType);
  const value = typeof data.data === 'string' ? data.data : undefined;
  if (!type.success || !value) {
    throw refusal('data must be TheHive\'s case observable, with its own "dataType" (ip, domain, ...) and "data" (its value)');
  }
  if (!(manifest.accepts as string[]).includes(type.data)) {
    throw refusal(`responder ${cortexWorkerId(manifest)} acts on ${manifest.accepts.join(', ')}; this case observable is a ${type.data}`);
  }
  return { type: type.data, data: value, tags: Array.isArray(data.tags) ? data.tags.filter((tag): tag is string => typeof tag === 'string').slice(0, 32) : undefined };
}

/**
 * A multipart run: the job in `_json`, the file in `attachment` (Cortex's name) or `data` (what
 * cortex4py and TheHive send), in either order; the file streams into the blob store, refused past
 * the analyzer's sizelimit with nothing kept.
 */
async function readRunParts(request: FastifyRequest, manifest: EngineManifest, blobs: BlobStore): Promise<{ run: AnalyzerRun; file?: BlobRef }> {
  let json: string | undefined;
  let file: BlobRef | undefined;
  try {
    const parts = request.parts({ limits: { fileSize: manifest.sizelimit + 1, files: 1, fields: 8, parts: 10, fieldSize: 1024 * 1024, headerPairs: 100 } });
    for await (const part of parts) {
      if (part.type === 'field') {
        if (part.fieldname === '_json') json = String(part.value);
        continue;
      }
      if (part.fieldname !== 'attachment' && part.fieldname !== 'data') {
        part.file.resume();
        throw refusal(`the file part is named ${JSON.stringify(part.fieldname.slice(0, 40))}: name it attachment (or data)`);
      }
      try {
        const stored = await blobs.put(part.file, { limit: manifest.sizelimit });
        file = { sha256: stored.sha256, size: stored.size, filename: sanitizeFilename(part.filename), contentType: part.mimetype };
      } catch (error) {
        part.file.resume();
        if (error instanceof BlobTooLargeError || (error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
          throw new CortexRefusal(413, 'PayloadTooLarge', `the attachment is larger than ${formatBytes(manifest.sizelimit)}, the sizelimit of analyzer ${cortexWorkerId(manifest)}; nothing was kept`);
        }
        throw error;
      }
    }
  } catch (error) {
    if (error instanceof CortexRefusal) throw error;
    if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new CortexRefusal(413, 'PayloadTooLarge', `the attachment is larger than ${formatBytes(manifest.sizelimit)}, the sizelimit of analyzer ${cortexWorkerId(manifest)}; nothing was kept`);
    }
    throw refusal(`the multipart request could not be read (${(error as Error).message}); send the file as "attachment" and the job as "_json"`);
  }
  if (json === undefined) throw refusal('the multipart request has no "_json" part: send the job as JSON in a field named _json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw refusal('the "_json" part is not JSON: send {"dataType":"file","tlp":2,...}');
  }
  const run = parseRun(AnalyzerRun, { dataType: 'file', ...(parsed && typeof parsed === 'object' ? parsed : {}) });
  return { run, file };
}
