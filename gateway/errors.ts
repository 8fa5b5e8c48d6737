import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { RequestRefused } from '../contract/client';
import { cortexErrorType } from '../core/cortex-api';

/** An error a client can act on, rendered as `{"error": {"code", "message", "details"}}`. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: unknown) => new ApiError(400, 'bad_request', message, details);
export const notFound = (message: string, details?: unknown) => new ApiError(404, 'not_found', message, details);
export const conflict = (message: string, details?: unknown) => new ApiError(409, 'conflict', message, details);
export const tooLarge = (message: string, details?: unknown) => new ApiError(413, 'payload_too_large', message, details);

const CODES: Record<number, string> = {
  400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed',
  406: 'not_acceptable', 409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type', 429: 'rate_limited',
};

/** One error handler for the whole gateway: stable JSON, correct status, never a stack trace. */
export const errorHandling = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) {
      return reply.status(error.statusCode).send({ error: { code: error.code, message: error.message, details: error.details } });
    }
    if (error instanceof RequestRefused) {
      return reply.status(error.statusCode).send({ error: { code: error.code, message: error.message } });
    }
    if ((error as FastifyError).validation) {
      return reply.status(400).send({
        error: { code: 'invalid_request', message: `the request is not valid: ${error.message}`, details: (error as FastifyError).validation },
      });
    }
    const down = unavailablePart(error);
    if (down) {
      request.log.warn({ err: error }, `${down} unavailable`);
      return reply.status(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({
        error: { code: 'unavailable', message: unavailableMessage(down, firstLine(error), request.method) },
      });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.status(status).send({ error: { code: CODES[status] ?? 'client_error', message: error.message } });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(status >= 500 ? status : 500).send({
      error: { code: 'internal', message: `Docket could not complete this request (${error.message.split('\n')[0]}); it has been logged, try again` },
    });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({
      error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}; the API is listed in the README` },
    });
  });
});

/**
 * What a caller is told when a part did not answer. A read changed nothing. A write may have reached
 * Temporal before the answer was lost (a deadline passed while the server worked on it), so the caller
 * is told to look before sending it again rather than that nothing was done.
 */
export function unavailableMessage(down: string, cause: string, method: string): string {
  const retry = `try again in ${RETRY_AFTER_SECONDS} s (GET /readyz says which part is down)`;
  if (method === 'GET' || method === 'HEAD') return `${down} is not answering (${cause}); ${retry}`;
  return `${down} is not answering (${cause}); the request may still take effect: check the state it changes before you send it again, or ${retry}`;
}

/** What a caller is told to wait before trying again when a part Docket needs is down. */
export const RETRY_AFTER_SECONDS = 5;

// gRPC's UNAVAILABLE and DEADLINE_EXCEEDED: Temporal is down, restarting, or did not answer within the client's deadline.
const TEMPORAL_DOWN = new Set([14, 4]);
const NETWORK_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Which part Docket depends on did not answer, when `error` or anything that caused it says so: gRPC
 * codes are Temporal's (the gateway talks gRPC to nothing else), network errors are the blob store's.
 */
export function unavailablePart(error: unknown): 'Temporal' | 'the blob store' | undefined {
  let cause: unknown = error;
  for (let depth = 0; depth < 8 && cause && typeof cause === 'object'; depth += 1) {
    const { code, name } = cause as { code?: unknown; name?: unknown };
    if (typeof code === 'number' && TEMPORAL_DOWN.has(code)) return 'Temporal';
    if (name === 'TimeoutError' || (typeof code === 'string' && NETWORK_DOWN.has(code))) return 'the blob store';
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

function firstLine(error: Error): string {
  return error.message.split('\n')[0];
}

/**
 * Answers bytes that are not HTTP (no route ever sees them) in the same error shape; fastify's own
 * answer has another. Pass it as fastify's `clientErrorHandler`.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] = clientFault(error);
  // TheHive and cortex4py read Cortex's shape on /api. No route saw this request, but when its request
  // line came in the bytes the parser refused (a long URL sent whole), the path is known from them.
  const body = JSON.stringify(isCortexPath(requestTarget(error.rawPacket)) ? { type: cortexErrorType(status), message } : { error: { code, message } });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

/** The target of the request line these bytes begin with (`POST /api/job/_search?… HTTP/1.1`), if they begin with one. */
export function requestTarget(packet: unknown): string | undefined {
  if (!Buffer.isBuffer(packet)) return undefined;
  return /^[A-Z]{3,16} (\S{1,256})/.exec(packet.subarray(0, 300).toString('latin1'))?.[1];
}

function isCortexPath(target: string | undefined): boolean {
  return target !== undefined && target.startsWith('/api/');
}

function clientFault(error: NodeJS.ErrnoException): [number, string, string] {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'timeout', 'the request took too long to arrive'];
  if (error.code === 'HPE_HEADER_OVERFLOW') return [431, 'headers_too_large', 'the request line and headers are larger than 16 KiB: send long values in a JSON body'];
  return [400, 'bad_request', 'the request is not valid HTTP'];
}

/**
 * Errors fastify raises before routing (a URL that does not decode, say), in the same shape; pass it
 * as fastify's `frameworkErrors`.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const message = `the request was refused before routing: ${error.message}`;
  // TheHive and cortex4py read Cortex's error shape on every /api answer, this one included.
  if (isCortexPath(request.url)) {
    reply.status(status).send({ type: cortexErrorType(status), message });
    return;
  }
  reply.status(status).send({ error: { code: 'bad_request', message } });
}
