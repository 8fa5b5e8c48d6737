import { z } from 'zod';

/**
 * Route schemas are written in zod (the core/ schemas where they exist) and handed to fastify as
 * OpenAPI 3.0 JSON Schema, so one definition gives validation, serialization and the document.
 */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io }) as Record<string, unknown>;
}

/** The gateway's one error shape. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe('stable, machine-readable: bad_request, unauthorized, forbidden, not_found, rate_limited, ...'),
    message: z.string().describe('what went wrong and what to do about it'),
    details: z.unknown().optional(),
  }),
}).meta({ description: 'An error' });

const errorJson = jsonSchema(ErrorBody);

/** Declared on every route: documents the error shape and serializes errors with it. */
export const errorResponses = { '4xx': errorJson, '5xx': errorJson };

/** Menagerie's `GET /result/<id>` answer (core/menagerie.ts has it as a type only). */
export const MenagerieResultBody = z.object({
  status: z.enum(['Received', 'Running', 'Success', 'Fail']),
  summary: z.string().describe('the first 80 bytes of the result or of the error'),
  link: z.string().describe('where the whole result is: GET this path'),
});
