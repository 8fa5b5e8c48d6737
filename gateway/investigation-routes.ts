import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import { FileTypeSniffer } from '../infra/file-type';
import { BlobTooLargeError, ChecksumMismatchError } from '../infra/blob-store';
import { describeIssues } from '../core/engine-manifest';
import { type BlobRef, Decision, InvestigationInput } from '../core/investigation';
import { type NotifyLimits, notifyRefusal } from '../core/notify-targets';
import { splitEngineRequest } from '../core/plan';
import { formatBytes } from '../core/units';
import { MAX_SEARCH_CHARS } from '../core/observable-index';
import { ApiError, badRequest, tooLarge } from './errors';
import type { DocketClient, ListFilters } from '../contract/client';
import { requireRespondRole } from './responder-access';
import { waitForJob, waitParam } from './long-poll';
import { sanitizeFilename } from './uploads';
import { binaryFile, errorResponses, JSON_BODY_ERRORS, jsonSchema, multipartSchema, requestSchema } from './schemas';

export interface V1InvestigationDeps {
  temporal: DocketClient;
  blobs: BlobStore;
  /** Tells analyzers from responders, read per request so a reload counts. */
  registry: EngineRegistry;
  /** Largest file accepted in a multipart investigation. */
  maxFileBytes: number;
  temporalUiUrl: string;
  namespace: string;
  /** Where a request's own `notify` may point (DOCKET_WEBHOOK_ALLOW, DOCKET_SLACK_CHANNELS). */
  notify: NotifyLimits;
  /** DOCKET_MAX_WAIT: the longest `?wait=` holds a read (60 s when absent). */
  maxWaitMs?: number;
}

// Filters become visibility query values, which DocketClient.list takes up to 100 characters long.
const filter = z.string().max(100).optional();

const ListQuery = z.object({
  verdict: filter,
  source: filter,
  engine: filter,
  type: filter,
  status: filter,
  observable: z.string().max(MAX_SEARCH_CHARS).optional()
    .describe('"seen before": only investigations that analyzed this value, given or found as an artifact (a domain, URL, IP, hash, mail, file sha256…; defanged is fine, case does not matter)'),
  pageSize: z.coerce.number().int().min(1).max(100).optional(),
  pageToken: z.string().max(4096).optional(),
});

/** The decider is the caller's key; a name in the body counts only for callers without one. */
const DecisionBody = Decision.omit({ by: true }).extend({ responseId: z.string().max(200).optional(), by: z.string().min(1).max(200).optional() });
const CancelBody = z.object({ reason: z.string().max(1000).optional() }).default({});

// Schemas the routes declare: fastify validates requests and serializes answers with them, and they are the OpenAPI document.

const IdParams = z.object({ id: z.string().min(1).max(200).describe('the investigation id (= its workflow ID, the jobid of an upload)') });

/** The JSON body: an investigation input without the fields the route sets (it refuses them by name). */
const CreateBody = InvestigationInput.omit({ source: true, requester: true });

/** The multipart body readParts takes: files in `file` or `upload` fields, the rest as text fields. */
const CreateMultipart = z.object({
  file: binaryFile.optional().describe('a file to investigate; repeat the field for more (or name it upload)'),
  text: z.string().optional().describe('free text whose observables are extracted'),
  observables: z.string().optional().describe('a JSON array such as [{"type":"ip","data":"203.0.113.5"}]'),
  engines: z.string().optional().describe('comma-separated engine names'),
  respond: z.string().optional().describe('comma-separated responder names (needs the respond role)'),
  tlp: z.string().optional(),
  pap: z.string().optional(),
  depth: z.string().optional(),
  force: z.enum(['true', 'false']).optional(),
  sha256: z.string().optional().describe('comma-separated hex digests the files must match, in order'),
});

const Links = z.object({ self: z.string(), result: z.string().describe('Menagerie-style status'), temporal: z.string().describe('the run in the Temporal Web UI') });

const Started = z.object({ id: z.string(), links: Links });

const Listed = z.object({
  investigations: z.array(z.looseObject({
    id: z.string(),
    status: z.string().describe('Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut'),
    startedAt: z.string().optional(),
    closedAt: z.string().optional(),
    source: z.string().optional(),
    verdict: z.string().optional(),
    engines: z.array(z.string()).optional(),
    observableTypes: z.array(z.string()).optional(),
    what: z.object({
      items: z.array(z.object({
        label: z.string().describe('an observable, a file name or the start of the text, shortened'),
        search: z.string().optional().describe('its indexed form: pass it as observable= to find every investigation that saw it'),
      })),
      more: z.number().int().describe('how many more subjects the input held'),
    }).optional().describe('what was investigated, as the start recorded it'),
    observablesIndexed: z.object({ indexed: z.number().int(), of: z.number().int() }).optional()
      .describe('how many of its distinct values observable= finds it by; past the index bound the rest are not indexed'),
  })),
  nextPageToken: z.string().optional().describe('pass it as pageToken, with the same filters, for the next page'),
});

// Reports and live status are open: their fields grow with the workflow, and the API passes them on whole.
const OpenRecord = z.looseObject({});

const InvestigationState = z.union([
  z.object({ id: z.string(), state: z.literal('completed'), report: OpenRecord.describe('the investigation report'), links: Links }),
  z.object({ id: z.string(), state: z.literal('failed'), error: z.string(), links: Links }),
  z.object({
    id: z.string(),
    state: z.literal('running'),
    phase: z.string(),
    status: OpenRecord.optional().describe('the live status query, when a worker answered it'),
    links: Links,
  }),
]);

const Decided = z.object({ id: z.string(), decided: z.array(z.looseObject({ id: z.string(), responder: z.string() })).describe('the responses this decision settled') });

const schemas = {
  create: {
    tags: ['investigations'],
    summary: 'Start an investigation from observables, text or files (JSON, or multipart/form-data with files)',
    body: {
      content: {
        'application/json': { schema: requestSchema(CreateBody, 'investigation', { replace: false }) },
        'multipart/form-data': { schema: multipartSchema(CreateMultipart) },
      },
    },
    response: { 202: jsonSchema(Started), ...errorResponses(...JSON_BODY_ERRORS) },
  },
  list: {
    tags: ['investigations'],
    summary: 'Investigations, newest first (running ones first), filtered by their search attributes or by an observable they analyzed',
    querystring: requestSchema(ListQuery, 'query'),
    response: { 200: jsonSchema(Listed), ...errorResponses(400) },
  },
  read: (maxWaitMs: number | undefined) => ({
    tags: ['investigations'],
    summary: 'One investigation: its report once completed, its live status while it runs',
    description: 'With `?wait=30s` the answer comes as soon as the investigation finishes (or when the wait ends, with its state then). '
      + 'The live status of a running investigation may be up to a second old.',
    params: requestSchema(IdParams, 'path'),
    querystring: requestSchema(z.object({ wait: waitParam(maxWaitMs) }), 'query'),
    response: { 200: jsonSchema(InvestigationState), ...errorResponses(400, 404) },
  }),
  decide: (verdict: 'approve' | 'reject') => ({
    tags: ['investigations'],
    summary: `${verdict === 'approve' ? 'Approve' : 'Reject'} a pending response (responseId), or all of them`,
    params: requestSchema(IdParams, 'path'),
    body: requestSchema(DecisionBody.default({}), 'decision'),
    response: { 200: jsonSchema(Decided), ...errorResponses(404, 409, ...JSON_BODY_ERRORS) },
  }),
  cancel: {
    tags: ['investigations'],
    summary: 'Cancel a running investigation; its engine containers are killed',
    params: requestSchema(IdParams, 'path'),
    body: requestSchema(CancelBody, 'cancellation'),
    response: { 202: jsonSchema(z.object({ id: z.string(), state: z.literal('cancelling') })), ...errorResponses(404, 409, ...JSON_BODY_ERRORS) },
  },
};

/** Who is calling, as the auth plugin identified them: the key's name, or `anonymous`. */
function caller(request: FastifyRequest): string {
  return request.caller?.kind === 'key' ? request.caller.key.name : 'anonymous';
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw badRequest(`the ${what} is not valid: ${describeIssues(parsed.error)}`, parsed.error.issues);
  return parsed.data;
}

/** `/v1/investigations`: create (JSON or multipart), list with filters, read, approve, reject, cancel. */
export async function v1InvestigationRoutes(app: FastifyInstance, deps: V1InvestigationDeps): Promise<void> {
  const links = (id: string) => ({
    self: `/v1/investigations/${id}`,
    result: `/result/${id}`,
    temporal: `${deps.temporalUiUrl}/namespaces/${deps.namespace}/workflows/${encodeURIComponent(id)}`,
  });

  app.post('/v1/investigations', { config: { role: 'analyze' }, schema: schemas.create }, async (request, reply) => {
    const body = request.isMultipart() ? await readMultipart(request, deps) : request.body;
    refuseRouteFields(body);
    const input = parse(InvestigationInput, { ...(body as object), source: 'http', requester: caller(request) }, 'investigation');
    const notifyRefused = notifyRefusal(input.notify, deps.notify);
    if (notifyRefused) throw badRequest(`${notifyRefused}; nothing was started`);
    const asked = splitEngineRequest(input.engines, input.respond, deps.registry.list().map((engine) => engine.manifest));
    if (!asked.ok) throw badRequest(asked.error);
    requireRespondRole(request, reply, asked.respond);
    input.engines = asked.engines;
    input.respond = asked.respond.length ? asked.respond : undefined;
    if (!input.observables.length && !input.files.length && !input.text?.trim()) {
      throw badRequest('nothing to investigate: give observables, text or files');
    }
    const id = await deps.temporal.startInvestigation(input);
    request.log.info({ id }, 'investigation started');
    return reply.status(202).send({ id, links: links(id) });
  });

  app.get('/v1/investigations', { config: { role: 'read' }, schema: schemas.list }, async (request) => {
    const filters = parse(ListQuery, request.query, 'query') as ListFilters;
    return deps.temporal.list(filters);
  });

  app.get<{ Params: { id: string }; Querystring: { wait?: string } }>('/v1/investigations/:id', { config: { role: 'read' }, schema: schemas.read(deps.maxWaitMs) }, async (request, reply) => {
    const { id } = request.params;
    let { view, live } = await deps.temporal.status(id);
    if (view.state === 'running' && request.query.wait) {
      await waitForJob(deps.temporal, id, request.query.wait, reply, deps.maxWaitMs);
      ({ view, live } = await deps.temporal.status(id));
    }
    if (view.state === 'completed') return { id, state: 'completed', report: view.report, links: links(id) };
    if (view.state === 'failed') return { id, state: 'failed', error: view.message, links: links(id) };
    return { id, state: 'running', phase: live?.phase ?? view.phase, status: live, links: links(id) };
  });

  for (const verdict of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/v1/investigations/:id/${verdict}`, { config: { role: 'respond' }, schema: schemas.decide(verdict) }, async (request) => {
      const body = parse(DecisionBody, request.body ?? {}, 'decision');
      const decided = await deps.temporal.decide(request.params.id, verdict, { ...body, by: caller(request) === 'anonymous' && body.by ? body.by : caller(request) });
      return { id: request.params.id, decided };
    });
  }

  app.post<{ Params: { id: string } }>('/v1/investigations/:id/cancel', { config: { role: 'respond' }, schema: schemas.cancel }, async (request, reply) => {
    const body = parse(CancelBody, request.body ?? {}, 'cancellation');
    await deps.temporal.cancel(request.params.id, caller(request), body.reason);
    return reply.status(202).send({ id: request.params.id, state: 'cancelling' });
  });
}

/** Fields the route sets from how the request came and who sent it; a body may not claim them. */
const ROUTE_FIELDS = ['source', 'requester'] as const;

function refuseRouteFields(body: unknown): void {
  if (!body || typeof body !== 'object') return;
  for (const field of ROUTE_FIELDS) {
    if (Object.hasOwn(body, field)) {
      throw badRequest(`${field} is set by Docket (the route the request came by, and the caller's key), not by the request: remove it from the body`, { field });
    }
  }
}

/**
 * A multipart investigation: files in any `file`/`upload` field, plus optional fields `text`,
 * `observables` (JSON array), `engines` and `respond` (comma-separated), `tlp`, `pap`, `force`,
 * `sha256` (hex digests the files must match, in order).
 */
async function readMultipart(request: FastifyRequest, deps: V1InvestigationDeps): Promise<Record<string, unknown>> {
  try {
    return await readParts(request, deps);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    // busboy's and the multipart plugin's complaints about the body itself are the client's to fix.
    throw badRequest(`the multipart request could not be read (${(error as Error).message}); send text, observables and files as multipart/form-data fields`);
  }
}

async function readParts(request: FastifyRequest, deps: V1InvestigationDeps): Promise<Record<string, unknown>> {
  // No prototype: field names are the client's, and `__proto__` or `constructor` must stay plain names.
  const fields: Record<string, string> = Object.create(null);
  const files: BlobRef[] = [];
  const parts = request.parts({ limits: { fileSize: deps.maxFileBytes + 1, files: 20, fields: 32, parts: 64, fieldSize: 1024 * 1024, headerPairs: 200 } });
  for await (const part of parts) {
    if (part.type === 'field') {
      fields[part.fieldname] = String(part.value);
      continue;
    }
    const expected = fields.sha256?.split(',')[files.length]?.trim();
    const sniffer = new FileTypeSniffer();
    try {
      const stored = await deps.blobs.put(sniffer.watch(part.file), { limit: deps.maxFileBytes, expectSha256: expected || undefined });
      // The type Docket detected, never the client's claim: engines take files by it (manifest filetypes).
      files.push({ sha256: stored.sha256, size: stored.size, filename: sanitizeFilename(part.filename), contentType: sniffer.contentType() });
    } catch (error) {
      part.file.resume();
      if (error instanceof BlobTooLargeError || (error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
        throw tooLarge(`file ${sanitizeFilename(part.filename)} is larger than ${formatBytes(deps.maxFileBytes)}; nothing was started`);
      }
      if (error instanceof ChecksumMismatchError) throw badRequest(`file ${sanitizeFilename(part.filename)}: ${error.message}`);
      throw error;
    }
  }
  const body: Record<string, unknown> = { files };
  for (const field of ROUTE_FIELDS) if (Object.hasOwn(fields, field)) body[field] = fields[field];
  if (fields.text) body.text = fields.text;
  if (fields.observables) {
    try {
      body.observables = JSON.parse(fields.observables);
    } catch {
      throw badRequest('the observables field must be a JSON array such as [{"type":"ip","data":"203.0.113.5"}]');
    }
  }
  if (fields.engines) body.engines = fields.engines.split(',').map((name) => name.trim()).filter(Boolean);
  if (fields.respond) body.respond = fields.respond.split(',').map((name) => name.trim()).filter(Boolean);
  for (const key of ['tlp', 'pap', 'depth'] as const) if (fields[key]) body[key] = Number(fields[key]);
  if (fields.force) body.force = fields.force === 'true';
  return body;
}
