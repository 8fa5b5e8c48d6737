import type { BlobStore } from './blob-store';
import type { Logger } from './log';
import type { ResultCache } from './result-cache';

const DAY_MS = 86_400_000;
/**
 * History retention counts from an investigation's close, a blob's age from its upload: the margin
 * covers investigations that stay open (waiting for an approval) for up to this long.
 */
export const RETENTION_MARGIN_MS = 7 * DAY_MS;
const SWEEP_EVERY_MS = 6 * 3_600_000;

export interface RetentionOptions {
  blobs: BlobStore;
  cache: ResultCache;
  /** DOCKET_RETENTION: how long Temporal keeps a finished investigation's history. */
  retentionMs: number;
  marginMs?: number;
  log: Logger;
}

export interface Sweep {
  cutoff: Date;
  blobs: number;
  cacheEntries: number;
}

/**
 * Deletes blobs and cache entries last written longer ago than the retention plus the margin. No
 * history that could reference them remains by then, so reading references is not needed: a blob
 * stored again (the same sample uploaded anew) is written anew and starts a new lifetime.
 */
export async function sweepExpired(options: RetentionOptions, now = Date.now()): Promise<Sweep> {
  const cutoff = new Date(now - options.retentionMs - (options.marginMs ?? RETENTION_MARGIN_MS));
  const blobs = await options.blobs.removeOlderThan(cutoff);
  const cacheEntries = await options.cache.removeOlderThan(cutoff);
  if (blobs || cacheEntries) {
    options.log.info(`retention: removed ${blobs} blob(s) and ${cacheEntries} cached result(s) stored before ${cutoff.toISOString()}`);
  }
  return { cutoff, blobs, cacheEntries };
}

/**
 * Sweeps now and every six hours until the returned function is called (it waits for a sweep under
 * way); a failed sweep is logged and tried again next time.
 */
export function startRetentionSweeps(options: RetentionOptions): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  const sweep = () => {
    if (running) return;
    running = sweepExpired(options)
      .catch((error) => options.log.warn(`retention: sweep of ${options.blobs.location} failed (${(error as Error).message}); retrying in 6h`))
      .finally(() => { running = undefined; });
  };
  sweep();
  const timer = setInterval(sweep, SWEEP_EVERY_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
