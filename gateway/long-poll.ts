import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { parseDuration } from '../core/units';
import type { DocketClient } from '../contract/client';

/** The longest a read waits for a job to finish; proxies commonly cut idle requests at 60 s. */
export const MAX_WAIT_MS = 60_000;

/** The longest `?wait=` this gateway takes: MAX_WAIT_MS, or DOCKET_MAX_WAIT when that is shorter. */
export function waitBound(maxWaitMs = MAX_WAIT_MS): number {
  return Math.max(0, Math.min(maxWaitMs, MAX_WAIT_MS));
}

function formatWait(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * `?wait=30s`: answer when the job finishes, or with its state as it is once the wait ends. A wait
 * past `maxWaitMs` (DOCKET_MAX_WAIT, at most MAX_WAIT_MS) is refused with 400 naming the bound.
 */
export function waitParam(maxWaitMs = MAX_WAIT_MS) {
  const bound = waitBound(maxWaitMs);
  const most = bound < MAX_WAIT_MS ? `${formatWait(bound)} on this gateway (DOCKET_MAX_WAIT)` : formatWait(bound);
  return z.string()
    .regex(/^\d{1,5}(ms|s)?$/, 'wait is a duration such as 30s or 500ms (a bare number counts seconds)')
    .refine((text) => (parseDuration(text) ?? Infinity) <= bound, `wait is at most ${most}`)
    .optional()
    .describe(`answer as soon as the job finishes, or after this long (at most ${most}) with its state then, so a client need not poll; e.g. ${formatWait(Math.min(bound, 30_000))}`);
}

/**
 * Holds the request until job `id` closes or `wait` passes (never past `maxWaitMs`), or the client
 * goes away. The caller reads the job's state again afterwards, so whatever ended the wait, the answer
 * is the state then.
 */
export async function waitForJob(temporal: DocketClient, id: string, wait: string | undefined, reply: FastifyReply, maxWaitMs = MAX_WAIT_MS): Promise<void> {
  const ms = Math.min(wait === undefined ? 0 : parseDuration(wait) ?? 0, waitBound(maxWaitMs));
  if (ms <= 0) return;
  const abort = new AbortController();
  const gone = () => abort.abort();
  reply.raw.once('close', gone);
  try {
    await temporal.waitForClose(id, ms, abort.signal);
  } finally {
    reply.raw.off('close', gone);
  }
}
