import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { EngineRegistry } from '../infra/engine-registry';
import { errorResponses, jsonSchema } from './schemas';
import { withTimeout } from './timeout';

export interface HealthDeps {
  client: Client;
  docker: Docker;
  registry: EngineRegistry;
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
  checks: z.object({ temporal: Check, docker: Check, engines: Check }),
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
      response: { 200: jsonSchema(z.object({ status: z.literal('ok') })), ...errorResponses },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: { rateLimit: false },
    schema: {
      tags: ['operations'], summary: 'Temporal and Docker are reachable and engines are loaded (200), or not (503)',
      response: { 200: readinessJson, 503: readinessJson, ...errorResponses },
    },
  }, async (_request, reply) => {
    const [temporal, docker] = await Promise.all([
      check(timeoutMs, `Temporal at ${temporalAddress(deps.client)}`, () =>
        deps.client.connection.withDeadline(Date.now() + timeoutMs, () => deps.client.workflowService.getSystemInfo({}))),
      check(timeoutMs, 'Docker', () => deps.docker.ping()),
    ]);
    const readiness: Readiness = {
      status: 'ready',
      checks: { temporal, docker, engines: enginesCheck(deps.registry) },
    };
    if (!Object.values(readiness.checks).every((one) => one.ok)) {
      readiness.status = 'not ready';
      reply.status(503);
    }
    return readiness;
  });
}

async function check(timeoutMs: number, what: string, probe: () => Promise<unknown>): Promise<Check> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    await withTimeout(probe(), timeoutMs);
    return { ok: true, message: `${what} answers`, ms: elapsed() };
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
