import type { FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { describeIssues } from '../core/engine-manifest';
import { badRequest } from './errors';

/**
 * Route schemas are written in zod (the core/ schemas where they exist) and handed to fastify as
 * OpenAPI 3.0 JSON Schema, so one definition gives validation, serialization and the document.
 */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io }) as Record<string, unknown>;
}

interface RequestPart {
  schema: z.ZodType;
  /** Names the part in the 400's message: `the <what> is not valid: ...`. */
  what: string;
  /** Hand the handler zod's output (defaults applied, numbers coerced) instead of what was sent. */
  replace: boolean;
  /** Documented only: fastify never parses a multipart body, so there is nothing to validate. */
  documentOnly: boolean;
}

// Keyed by the JSON Schema object fastify is given, so the validator compiler finds the zod schema it came from.
const requestParts = new WeakMap<object, RequestPart>();

/**
 * A route's params, querystring or JSON body: documented from `schema` and validated with it, so a
 * refusal reads as the handlers' own did (`the query is not valid: pageSize: ...`). `replace: false`
 * keeps the body as sent, for a handler that must see fields the schema would drop.
 */
export function requestSchema(schema: z.ZodType, what: string, options: { replace?: boolean } = {}): Record<string, unknown> {
  const json = jsonSchema(schema, 'input');
  requestParts.set(json, { schema, what, replace: options.replace ?? true, documentOnly: false });
  return json;
}

/** A multipart/form-data body in the document; the route reads and checks the parts itself. */
export function multipartSchema(schema: z.ZodType): Record<string, unknown> {
  const json = jsonSchema(schema, 'input');
  requestParts.set(json, { schema, what: 'multipart body', replace: false, documentOnly: true });
  return json;
}

/** The binary file part of a multipart body, as OpenAPI 3.0 writes it. */
export const binaryFile = z.string().meta({ format: 'binary' });

/**
 * Fastify's validator compiler for the whole gateway: every request schema comes from zod through
 * `requestSchema`, so one refusal shape (400 `bad_request`, the zod issues as details) covers them all.
 */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, method, url, httpPart }) => {
  const part = requestParts.get(schema as object);
  if (!part) {
    throw new Error(`${method} ${url} declares a ${httpPart ?? 'request'} schema not made with requestSchema() in gateway/schemas.ts; declare it from a zod schema there`);
  }
  if (part.documentOnly) return () => true;
  return (data: unknown) => {
    // An absent or `null` JSON body means "no options", as the routes have always read it.
    const value = httpPart === 'body' ? data ?? {} : data;
    const parsed = part.schema.safeParse(value);
    if (!parsed.success) return { error: badRequest(`the ${part.what} is not valid: ${describeIssues(parsed.error)}`, parsed.error.issues) };
    return part.replace ? { value: parsed.data } : true;
  };
};

/** The gateway's one error shape. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe('stable, machine-readable: bad_request, unauthorized, forbidden, not_found, rate_limited, ...'),
    message: z.string().describe('what went wrong and what to do about it'),
    details: z.unknown().optional(),
  }),
}).meta({ description: 'An error' });

/** ErrorBody as JSON Schema, for a status whose answer is an error or something else (`/readyz`'s 503). */
export const errorJson = jsonSchema(ErrorBody);

const STATUS_MEANING: Record<number, string> = {
  400: 'the request is not valid: the message names the field and what to send',
  401: 'no key where one is needed, or a key that is not valid or not sent as "Bearer <key>"',
  403: "the key's role is not enough, or a page on another site sent the request",
  404: 'nothing by that name or id',
  409: 'not possible in its current state (the message says when it will be)',
  413: 'larger than the limit the message names; nothing was kept',
  415: 'a content type this route does not take',
  429: 'too many requests (or refused keys) this minute; the message says when to retry',
  500: 'Docket failed; it has been logged',
  503: 'a dependency Docket needs is not available; the message says which',
};

/** Answered by the hooks in front of every route: auth, the site guard, the rate limit, failures. */
const EVERY_ROUTE = [401, 403, 429, 500, 503];

function described(status: number): Record<string, unknown> {
  return { ...errorJson, description: STATUS_MEANING[status] ?? 'an error' };
}

/**
 * The error answers a route declares: the statuses its handler and schema give (`400` when it takes
 * input, `404`, `409`, ...) beside the ones every route can give, each in the one error shape. The
 * `4xx`/`5xx` ranges cover what fastify itself may answer (405, 406, 431).
 */
export function errorResponses(...statuses: number[]): Record<string, Record<string, unknown>> {
  const answers: Record<string, Record<string, unknown>> = {};
  for (const status of [...new Set([...statuses, ...EVERY_ROUTE])].sort()) answers[status] = described(status);
  return { ...answers, '4xx': errorJson, '5xx': errorJson };
}

/** A route's POST body, when it takes JSON: 413 past the body limit, 415 for another content type. */
export const JSON_BODY_ERRORS = [400, 413, 415];

/** Menagerie's `GET /result/<id>` answer (core/menagerie.ts has it as a type only). */
export const MenagerieResultBody = z.object({
  status: z.enum(['Received', 'Running', 'Success', 'Fail']),
  summary: z.string().describe('the first 80 bytes of the result or of the error'),
  link: z.string().describe('where the whole result is: GET this path'),
});
