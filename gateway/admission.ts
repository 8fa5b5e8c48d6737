import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './errors';

/** Methods that may start work: an upload streaming to the blob store, a workflow start, a signal. */
const STARTING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Seconds a refused client waits: requests in progress finish in well under that on a healthy gateway. */
const RETRY_AFTER_S = 1;

export interface AdmissionOptions {
  /** State-changing requests this gateway handles at once; 0 admits every one. */
  maxInflight: number;
}

/**
 * Admission control. The per-key rate limit counts requests a minute, so a burst from many keys (or one
 * burst inside the minute) could still pile up open uploads and Temporal start calls without bound and
 * answer late or not at all. Past `maxInflight` requests in progress, a state-changing request is
 * refused at once, before its body is read, with 503 and Retry-After; reads are never refused here, so
 * clients can keep polling the jobs already accepted.
 */
export const admission = fp(async (app: FastifyInstance, options: AdmissionOptions) => {
  if (options.maxInflight <= 0) return;
  let inflight = 0;

  app.addHook('onRequest', async (request, reply) => {
    if (!STARTING.has(request.method)) return;
    if (inflight >= options.maxInflight) {
      reply.header('retry-after', String(RETRY_AFTER_S));
      throw new ApiError(
        503, 'overloaded',
        `the gateway is already handling ${options.maxInflight} state-changing requests (DOCKET_MAX_INFLIGHT_STARTS); nothing was started, send this request again in ${RETRY_AFTER_S} s`,
        { maxInflight: options.maxInflight, retryAfterSeconds: RETRY_AFTER_S },
      );
    }
    inflight += 1;
    // 'close' comes once the answer is sent or the client went away, whichever way the request ended.
    reply.raw.once('close', () => {
      inflight -= 1;
    });
  });
});
