import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BlobStore } from '../infra/blob-store';
import type { EngineRegistry } from '../infra/engine-registry';
import type { EngineRunners } from '../infra/engine-runner';
import { RETRY_AFTER_SECONDS } from './errors';
import { errorJson, errorResponses, jsonSchema } from './schemas';
import { withTimeout } from './timeout';

export interface HealthDeps {
  client: Client;
  /** The engine runners whose health readiness reports, one check each, named by `runner:` value. */
  runners: EngineRunners;
  registry: EngineRegistry;
  /** The blob store uploads go to; readiness asks it for a blob that does not exist. */
  blobs?: BlobStore;
  /** How long one readiness check may take before it counts as failed. */
  checkTimeoutMs?: number;
}

const Check = z.object({
  ok: z.boolean(),
  message: z.string(),
  ms: z.number().int(),
});
type Check = z.infer<typeof Check>;

export const Readiness = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.object({ temporal: Check, engines: Check }).catchall(Check)
    .describe('temporal, blobs (the blob store), engines, and one check per engine runner named by its runner: value (docker, process)'),
});
type Readiness = z.infer<typeof Readiness>;

const readinessJson = jsonSchema(Readiness);

/**
 * `/healthz` says the process answers (restart it when it does not); `/readyz` says whether it can
 * do its work now (send it traffic only when it can). Both are public and not rate limited, so
 * probes need no key.
 */
export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  const timeoutMs = deps.checkTimeoutMs ?? 3000;

  app.get('/healthz', {
    config: { rateLimit: false },
    schema: {
      tags: ['operations'], summary: 'The process is up',
      response: { 200: jsonSchema(z.object({ status: z.literal('ok') })), ...errorResponses() },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: { rateLimit: false },
    schema: {
      tags: ['operations'], summary: 'Temporal, the blob store and the engine runners (Docker) answer and engines are loaded (200), or not (503), naming what is down',
      // 503 is readiness itself, or auth's refusal when the key file cannot be read.
      response: { ...errorResponses(), 200: readinessJson, 503: { anyOf: [readinessJson, errorJson] } },
    },
  }, async (_request, reply) => {
    const runners = deps.runners.list();
    const [temporal, ...runnerChecks] = await Promise.all([
      check(timeoutMs, `Temporal at ${temporalAddress(deps.client)}`, async () => {
        await deps.client.connection.withDeadline(Date.now() + timeoutMs, () => deps.client.workflowService.getSystemInfo({}));
        return undefined;
      }),
      ...runners.map((runner) => check(timeoutMs, runner.title, () => runner.health())),
    ]);
    const blobs = deps.blobs;
    const readiness: Readiness = {
      status: 'ready',
      checks: {
        temporal,
        ...(blobs ? { blobs: await check(timeoutMs, 'the blob store', () => blobs.has(PROBE_SHA256).then(() => undefined)) } : {}),
        ...Object.fromEntries(runners.map((runner, index) => [runner.kind, runnerChecks[index]])),
        engines: enginesCheck(deps.registry),
      },
    };
    if (!Object.values(readiness.checks).every((one) => one.ok)) {
      readiness.status = 'not ready';
      reply.status(503).header('retry-after', String(RETRY_AFTER_SECONDS));
    }
    return readiness;
  });
}

/** A content address no upload has: asking for it reads the store without changing it. */
const PROBE_SHA256 = '0'.repeat(64);

/** Runs one probe within the timeout; a probe may say more than "answers" by resolving with its own message. */
async function check(timeoutMs: number, what: string, probe: () => Promise<string | undefined>): Promise<Check> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const message = await withTimeout(probe(), timeoutMs);
    return { ok: true, message: message ?? `${what} answers`, ms: elapsed() };
  } catch (error) {
    return { ok: false, message: `cannot reach ${what}: ${(error as Error).message.split('\n')[0]}`, ms: elapsed() };
  }
}

/** Counts only: the skipped manifests' messages name files and are for `GET /v1/engines` (read role). */
function enginesCheck(registry: EngineRegistry): Check {
  const loaded = registry.names().length;
  const skipped = registry.errors.length;
  const note = skipped ? `; ${skipped} manifest(s) skipped, see GET /v1/engines` : '';
  if (!loaded) return { ok: false, message: `no engine is loaded (check DOCKET_ENGINES_DIR)${note}`, ms: 0 };
  return { ok: true, message: `${loaded} engine(s) loaded${note}`, ms: 0 };
}

function temporalAddress(client: Client): string {
  return (client.connection as { options?: { address?: string } }).options?.address ?? 'the configured address';
}
