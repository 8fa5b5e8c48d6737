import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { parseDuration } from '../core/units';
import type { DocketClient } from '../contract/client';

/** The longest a read waits for a job to finish; proxies commonly cut idle requests at 60 s. */
export const MAX_WAIT_MS = 60_000;

/** `?wait=30s`: answer when the job finishes, or with its state as it is once the wait ends. */
export const WaitParam = z.string()
  .regex(/^\d{1,5}(ms|s)?$/, 'wait is a duration such as 30s or 500ms (a bare number counts seconds)')
  .refine((text) => (parseDuration(text) ?? Infinity) <= MAX_WAIT_MS, `wait is at most ${MAX_WAIT_MS / 1000}s`)
  .optional()
  .describe(`answer as soon as the job finishes, or after this long (at most ${MAX_WAIT_MS / 1000}s) with its state then, so a client need not poll; e.g. 30s`);

/**
 * Holds the request until job `id` closes or `wait` passes, or the client goes away. The caller
 * reads the job's state again afterwards, so whatever ended the wait, the answer is the state then.
 */
export async function waitForJob(temporal: DocketClient, id: string, wait: string | undefined, reply: FastifyReply): Promise<void> {
  const ms = wait === undefined ? 0 : parseDuration(wait) ?? 0;
  if (ms <= 0) return;
  const abort = new AbortController();
  const gone = () => abort.abort();
  reply.raw.once('close', gone);
  try {
    await temporal.waitForClose(id, Math.min(ms, MAX_WAIT_MS), abort.signal);
  } finally {
    reply.raw.off('close', gone);
  }
}
