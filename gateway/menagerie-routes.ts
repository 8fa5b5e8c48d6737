import type { FastifyInstance } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import { z } from 'zod';
import { BlobTooLargeError, type BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import { FileTypeSniffer } from '../infra/file-type';
import { InvestigationInput } from '../core/investigation';
import { linkFor, type MenagerieResult, menagerieFromReport, summarize } from '../core/menagerie';
import { formatBytes } from '../core/units';
import { ApiError, badRequest, conflict, notFound, tooLarge } from './errors';
import type { DocketClient } from '../contract/client';
import { requireRespondRole } from './responder-access';
import { waitForJob, waitParam } from './long-poll';
import { binaryFile, errorResponses, jsonSchema, MenagerieResultBody, multipartSchema, requestSchema } from './schemas';
import { sanitizeFilename } from './uploads';

export interface MenagerieDeps {
  registry: EngineRegistry;
  blobs: BlobStore;
  temporal: DocketClient;
  /** DOCKET_MAX_WAIT: the longest `?wait=` holds a read (60 s when absent). */
  maxWaitMs?: number;
}

const UPLOAD_FIELD = 'upload';

// Temporal refuses an empty workflow ID as invalid; such an id is the client's mistake, not a 500.
// 200: the router's own bound on a path parameter (maxParamLength in gateway/server.ts).
const idParams = requestSchema(z.object({ id: z.string().min(1).max(200).describe('the jobid the upload answered') }), 'path');

/** IBM Menagerie's API, exactly: `POST /<engine>/upload`, `GET /result/<id>`, `GET /link/<id>`. */
export async function menagerieRoutes(app: FastifyInstance, deps: MenagerieDeps): Promise<void> {
  app.post<{ Params: { engine: string } }>('/:engine/upload', {
    config: { role: 'analyze' },
    schema: {
      tags: ['menagerie'],
      summary: 'Upload a file for an engine; answers once the job is durable',
      description: `multipart/form-data with the file in a field named \`${UPLOAD_FIELD}\`.`,
      params: requestSchema(z.object({ engine: z.string().max(200).describe('an engine that accepts files') }), 'path'),
      body: {
        content: {
          'multipart/form-data': { schema: multipartSchema(z.object({ [UPLOAD_FIELD]: binaryFile.describe('the file; one only') })) },
        },
      },
      response: { 200: jsonSchema(z.object({ jobid: z.string() })), ...errorResponses(400, 404, 413, 415) },
    },
  }, async (request, reply) => {
    const engine = deps.registry.get(request.params.engine);
    if (!engine) {
      throw notFound(`engine ${request.params.engine} is not declared; the engines are: ${deps.registry.names().join(', ') || 'none'}`, {
        engines: deps.registry.names(),
      });
    }
    if (engine.kind === 'responder') {
      // An upload would run it at once; responders act only as responses, which carry their approval.
      requireRespondRole(request, reply, [engine.name]);
      throw badRequest(`engine ${engine.name} is a responder, and an upload never runs one: ask for it with POST /v1/investigations `
        + `{"observables":[…],"respond":["${engine.name}"]}, where it waits for approval unless the policy says approval: none`);
    }
    if (!engine.accepts.includes('file')) {
      throw badRequest(`engine ${engine.name} does not take files (it accepts ${engine.accepts.join(', ')}); use POST /v1/investigations with observables`);
    }
    if (!request.isMultipart()) {
      throw badRequest(`send the file as multipart/form-data in a field named ${UPLOAD_FIELD}, for example: curl -F ${UPLOAD_FIELD}=@sample.apk .../${engine.name}/upload`);
    }
    let part: MultipartFile | undefined;
    try {
      // One byte over the limit, so the blob store sees the excess and refuses before anything is kept.
      part = await request.file({ limits: { fileSize: engine.sizelimit + 1, files: 1, fields: 16, parts: 32, headerPairs: 200 } });
    } catch (error) {
      throw asUploadError(error, engine.sizelimit, true);
    }
    if (!part) throw badRequest(`no file in the request: send it in a multipart field named ${UPLOAD_FIELD}`);
    if (part.fieldname !== UPLOAD_FIELD) {
      part.file.resume();
      throw badRequest(`the file came in a field named ${part.fieldname}; send it in a field named ${UPLOAD_FIELD}`);
    }
    let blob;
    // A malformed or cut-off body fails the file stream itself; a failure of the blob store does not.
    let clientFault = false;
    part.file.once('error', () => {
      clientFault = true;
    });
    const sniffer = new FileTypeSniffer();
    try {
      blob = await deps.blobs.put(sniffer.watch(part.file), { limit: engine.sizelimit });
    } catch (error) {
      throw asUploadError(error, engine.sizelimit, clientFault);
    }
    if (part.file.truncated) throw asUploadError(new BlobTooLargeError(engine.sizelimit), engine.sizelimit, true);
    // The type Docket detected, never the client's claim: engines take files by it (manifest filetypes).
    const file = { sha256: blob.sha256, size: blob.size, filename: sanitizeFilename(part.filename), contentType: sniffer.contentType() };
    const jobid = await deps.temporal.startInvestigation(InvestigationInput.parse({ files: [file], engines: [engine.name], source: 'http', depth: 0 }));
    request.log.info({ jobid, engine: engine.name, sha256: blob.sha256, size: blob.size }, 'upload accepted');
    return { jobid };
  });

  app.get<{ Params: { id: string }; Querystring: { wait?: string } }>('/result/:id', {
    config: { role: 'read' },
    schema: {
      tags: ['menagerie'], summary: "A job's status and the first 80 bytes of its result",
      description: 'With `?wait=30s` the answer comes as soon as the job finishes (or when the wait ends, with its status then): no need to poll.',
      params: idParams,
      querystring: requestSchema(z.object({ wait: waitParam(deps.maxWaitMs) }), 'query'),
      response: { 200: jsonSchema(MenagerieResultBody), ...errorResponses(400, 404) },
    },
  }, async (request, reply): Promise<MenagerieResult> => {
    let view = await deps.temporal.view(request.params.id);
    if (view.state === 'running' && request.query.wait) {
      await waitForJob(deps.temporal, request.params.id, request.query.wait, reply, deps.maxWaitMs);
      view = await deps.temporal.view(request.params.id);
    }
    const link = linkFor(request.params.id);
    if (view.state === 'completed') return menagerieFromReport(view.report);
    if (view.state === 'failed') return { status: 'Fail', summary: summarize(view.message), link };
    const running = view.engineStarted || view.finishedJobs > 0 || !['received', 'parsing', 'analyzing'].includes(view.phase);
    return { status: running ? 'Running' : 'Received', summary: '', link };
  });

  app.get<{ Params: { id: string }; Querystring: { engine?: string; job?: number } }>('/link/:id', {
    config: { role: 'read' },
    schema: {
      tags: ['menagerie'], summary: "A finished job's whole result (409 while it runs)",
      params: idParams,
      querystring: requestSchema(z.object({
        engine: z.string().max(200).optional().describe("pick this engine's (first) result"),
        job: z.coerce.number().int().min(0).optional().describe('pick the result of this engine job (its index in the report)'),
      }), 'query'),
      response: {
        200: { description: "the result bytes, with the engine's content type", content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        ...errorResponses(400, 404, 409),
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const view = await deps.temporal.view(id);
    if (view.state === 'running') throw conflict(`job ${id} is not finished; poll GET /result/${id} until its status is Success or Fail`);
    if (view.state === 'failed') throw notFound(`job ${id} has no result: ${view.message}`);
    const { engine: wanted, job: index } = request.query;
    const job = index !== undefined
      ? view.report.jobs[index]
      : view.report.jobs.find((candidate) => !wanted || candidate.engine === wanted);
    if (!job) {
      throw notFound(index !== undefined
        ? `job ${id} has ${view.report.jobs.length} engine job(s); ?job= counts from 0`
        : `job ${id} ran no engine${wanted ? ` named ${wanted}` : ''}`);
    }
    const blob = job.result ?? job.logs;
    if (!blob) throw notFound(`job ${id} has no result from ${job.engine}: ${job.errorMessage ?? job.status}`);
    reply.header('content-type', job.result?.contentType ?? 'application/octet-stream');
    reply.header('content-length', blob.size);
    reply.header('x-docket-engine', job.engine);
    reply.header('x-docket-status', job.status);
    const bytes = await deps.blobs.open(blob.sha256);
    // Until fastify pipes it, nothing listens: a blob removed meanwhile would otherwise end the process.
    bytes.on('error', (error) => request.log.error({ err: error, id, sha256: blob.sha256 }, 'a result blob cannot be read'));
    return reply.send(bytes);
  });
}

/** `clientFault`: the error came from reading what the client sent, so it is a 400, not a 500. */
function asUploadError(error: unknown, limit: number, clientFault: boolean): unknown {
  const code = (error as { code?: string }).code;
  if (error instanceof BlobTooLargeError || code === 'FST_REQ_FILE_TOO_LARGE') {
    return tooLarge(`the upload is larger than this engine's limit of ${formatBytes(limit)}; nothing was stored`);
  }
  if (error instanceof ApiError) return error;
  if ((typeof code === 'string' && code.startsWith('FST_')) || clientFault) {
    return badRequest(`the multipart request was refused: ${(error as Error).message}`);
  }
  return error;
}
