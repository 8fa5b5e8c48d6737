/**
 * Failure classes of the engine layer. The activity turns them into Temporal failures: retryable
 * ones are retried by the activity's retry policy, the others end the engine job at once.
 */

/** The Docker daemon could not be reached or answered with a transient error: worth retrying. */
export class DockerUnavailableError extends Error {
  readonly retryable = true;
}

/** The engine's image is not on the Docker host: retrying will not help until someone builds it. */
export class ImageMissingError extends Error {
  readonly retryable = false;
  constructor(readonly image: string, readonly engine: string) {
    super(`image ${image} for engine ${engine} not found on the Docker host: run npm run engines:build (or docker build the engine's folder)`);
  }
}

/** The engine ran past its timeout and was killed. */
export class EngineTimeoutError extends Error {
  readonly retryable = true;
  constructor(readonly engine: string, readonly timeoutMs: number) {
    super(`engine ${engine} ran past its timeout of ${Math.round(timeoutMs / 1000)}s and was killed`);
  }
}

/** Errors from dockerode that mean "try again later" rather than "this request is wrong". */
export function isTransientDockerError(error: unknown): boolean {
  const err = error as { code?: string; statusCode?: number; errno?: string };
  if (!err || typeof err !== 'object') return false;
  if (err.code && ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(err.code)) {
    return true;
  }
  return typeof err.statusCode === 'number' && err.statusCode >= 500;
}
