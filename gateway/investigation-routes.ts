import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import { BlobTooLargeError, ChecksumMismatchError } from '../infra/blob-store';
import { describeIssues } from '../core/engine-manifest';
import { type BlobRef, Decision, InvestigationInput } from '../core/investigation';
import { type NotifyLimits, notifyRefusal } from '../core/notify-targets';
import { splitEngineRequest } from '../core/plan';
import { formatBytes } from '../core/units';
import { ApiError, badRequest, tooLarge } from './errors';
import type { Investigations, ListFilters } from './investigations';
import { requireRespondRole } from './responder-access';
import { sanitizeFilename } from './uploads';

export interface V1InvestigationDeps {
  investigations: Investigations;
  blobs: BlobStore;
  /** Tells analyzers from responders, read per request so a reload counts. */
  registry: EngineRegistry;
  /** Largest file accepted in a multipart investigation. */
  maxFileBytes: number;
  temporalUiUrl: string;
  namespace: string;
  /** Where a request's own `notify` may point (DOCKET_WEBHOOK_ALLOW, DOCKET_SLACK_CHANNELS). */
  notify: NotifyLimits;
}

const ListQuery = z.object({
  verdict: z.string().optional(),
  source: z.string().optional(),
  engine: z.string().optional(),
  type: z.string().optional(),
  status: z.string().optional(),
  pageSize: z.coerce.number().int().min(1).max(100).optional(),
  pageToken: z.string().max(4096).optional(),
});

/** The decider is the caller's key; a name in the body counts only for callers without one. */
const DecisionBody = Decision.omit({ by: true }).extend({ by: z.string().min(1).max(200).optional() });
const CancelBody = z.object({ reason: z.string().max(1000).optional() }).default({});

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

  app.post('/v1/investigations', { config: { role: 'analyze' } }, async (request, reply) => {
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
    const id = await deps.investigations.start(input);
    request.log.info({ id }, 'investigation started');
    return reply.status(202).send({ id, links: links(id) });
  });

  app.get('/v1/investigations', { config: { role: 'read' } }, async (request) => {
    const filters = parse(ListQuery, request.query, 'query') as ListFilters;
    return deps.investigations.list(filters);
  });

  app.get<{ Params: { id: string } }>('/v1/investigations/:id', { config: { role: 'read' } }, async (request) => {
    const { id } = request.params;
    const { view, live } = await deps.investigations.status(id);
    if (view.state === 'completed') return { id, state: 'completed', report: view.report, links: links(id) };
    if (view.state === 'failed') return { id, state: 'failed', error: view.message, links: links(id) };
    return { id, state: 'running', phase: live?.phase ?? view.phase, status: live, links: links(id) };
  });

  for (const verdict of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/v1/investigations/:id/${verdict}`, { config: { role: 'respond' } }, async (request) => {
      const body = parse(DecisionBody, request.body ?? {}, 'decision');
      const decided = await deps.investigations.decide(request.params.id, verdict, { ...body, by: caller(request) === 'anonymous' && body.by ? body.by : caller(request) });
      return { id: request.params.id, decided };
    });
  }

  app.post<{ Params: { id: string } }>('/v1/investigations/:id/cancel', { config: { role: 'respond' } }, async (request, reply) => {
    const body = parse(CancelBody, request.body ?? {}, 'cancellation');
    await deps.investigations.cancel(request.params.id, caller(request), body.reason);
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
    try {
      const stored = await deps.blobs.put(part.file, { limit: deps.maxFileBytes, expectSha256: expected || undefined });
      files.push({ sha256: stored.sha256, size: stored.size, filename: sanitizeFilename(part.filename), contentType: part.mimetype });
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
