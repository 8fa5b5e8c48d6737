import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BackfillTooLargeError, type DocketSchedules, UnknownScheduleError } from '../infra/schedule-control';
import { OverlapPolicy } from '../core/schedule-definition';
import { badRequest, notFound } from './errors';
import { errorResponses, JSON_BODY_ERRORS, jsonSchema, requestSchema } from './schemas';

/**
 * `/v1/schedules`: the schedules `schedules/*.yaml` define, as Temporal runs them. Their definitions
 * change only through the files (reconciled at start, or with `npm run schedules -- reconcile`); here
 * they are listed, paused, unpaused, triggered and backfilled.
 */

const ScheduleRunBody = z.object({
  workflowId: z.string(),
  scheduledAt: z.string(),
  startedAt: z.string(),
  status: z.string().describe('Temporal execution status: RUNNING, COMPLETED, FAILED, TERMINATED, ...'),
  outcome: z.string().optional().describe('Success or Fail, once the run completed'),
});

const ScheduleBody = z.object({
  id: z.string(),
  scheduleId: z.string().describe('the Temporal Schedule ID (`temporal schedule describe --schedule-id <it>`)'),
  description: z.string(),
  file: z.string().optional(),
  action: z.enum(['investigate', 'run']).optional(),
  engine: z.string().optional(),
  cron: z.string().optional(),
  intervalMs: z.number().optional(),
  paused: z.boolean(),
  note: z.string().optional(),
  nextRuns: z.array(z.string()),
  recentRuns: z.array(ScheduleRunBody).describe('newest first'),
  actionsTaken: z.number().int(),
});

const ScheduleList = z.object({ schedules: z.array(ScheduleBody) });
const Done = z.object({ id: z.string(), done: z.string() });

const IdParams = z.object({ id: z.string().max(100) });
const NoteBody = z.object({ note: z.string().max(500).optional() }).default({});
const TriggerBody = z.object({ overlap: OverlapPolicy.optional() }).default({});
const BackfillBody = z.object({
  start: z.iso.datetime({ offset: true }),
  end: z.iso.datetime({ offset: true }),
  overlap: OverlapPolicy.optional(),
}).refine((body) => Date.parse(body.start) < Date.parse(body.end), { path: ['end'], message: 'must be after start' });

function caller(request: FastifyRequest): string {
  return request.caller?.kind === 'key' ? request.caller.key.name : 'anonymous';
}

async function known<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof UnknownScheduleError) throw notFound(error.message);
    if (error instanceof BackfillTooLargeError) throw badRequest(error.message);
    throw error;
  }
}

/** A control route's request once its schemas have validated it. */
type IdRoute<Body extends z.ZodType> = { Params: z.infer<typeof IdParams>; Body: z.output<Body> };

export async function scheduleRoutes(app: FastifyInstance, deps: { schedules: DocketSchedules }): Promise<void> {
  const { schedules } = deps;
  const control = { config: { role: 'respond' as const } };
  const params = requestSchema(IdParams, 'path');
  const noteBody = requestSchema(NoteBody, 'body');
  const controlSchema = (summary: string, body = noteBody) => ({
    tags: ['schedules'], summary, params, body, response: { 200: jsonSchema(Done), ...errorResponses(404, ...JSON_BODY_ERRORS) },
  });

  app.get('/v1/schedules', {
    config: { role: 'read' },
    schema: {
      tags: ['schedules'],
      summary: 'The schedules Docket manages: next run times, paused or not, and their latest runs with results',
      response: { 200: jsonSchema(ScheduleList), ...errorResponses() },
    },
  }, async () => ({ schedules: await schedules.list() }));

  app.post<IdRoute<typeof NoteBody>>('/v1/schedules/:id/pause', { ...control, schema: controlSchema('Pause a schedule until it is unpaused (its file is not changed)') }, async (request) => {
    const { id } = request.params;
    await known(() => schedules.pause(id, request.body.note ?? `paused by ${caller(request)} through the API`));
    return { id, done: 'paused' };
  });

  app.post<IdRoute<typeof NoteBody>>('/v1/schedules/:id/unpause', { ...control, schema: controlSchema('Unpause a schedule') }, async (request) => {
    const { id } = request.params;
    await known(() => schedules.unpause(id, request.body.note ?? `unpaused by ${caller(request)} through the API`));
    return { id, done: 'unpaused' };
  });

  app.post<IdRoute<typeof TriggerBody>>('/v1/schedules/:id/trigger', {
    ...control,
    schema: controlSchema('Run a schedule now, paused or not (overlap: allow_all unless given)', requestSchema(TriggerBody, 'body')),
  }, async (request) => {
    const { id } = request.params;
    await known(() => schedules.trigger(id, request.body.overlap));
    return { id, done: 'triggered' };
  });

  app.post<IdRoute<typeof BackfillBody>>('/v1/schedules/:id/backfill', {
    ...control,
    schema: {
      tags: ['schedules'],
      summary: 'Take the runs a schedule would have taken between start (exclusive) and end (inclusive), now',
      params,
      body: requestSchema(BackfillBody, 'backfill'),
      response: { 200: jsonSchema(Done.extend({ estimatedRuns: z.number().int().optional() })), ...errorResponses(404, ...JSON_BODY_ERRORS) },
    },
  }, async (request) => {
    const { id } = request.params;
    const { start, end, overlap } = request.body;
    const { estimatedRuns } = await known(() => schedules.backfill(id, new Date(start), new Date(end), overlap));
    return { id, done: 'backfilled', estimatedRuns };
  });
}
