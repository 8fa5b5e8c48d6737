import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { EngineRegistry } from '../infra/engine-registry';
import type { EngineRunners } from '../infra/engine-runner';
import { EngineDataType, EngineManifest } from '../core/engine-manifest';
import { errorResponses, jsonSchema } from './schemas';
import { withTimeout } from './timeout';

const INSPECT_TIMEOUT_MS = 5000;

/**
 * One engine as the API shows it: its manifest's public fields and the image it runs now. Built field
 * by field, never by spreading the manifest, so `config` and `env` (which name secrets) never leave.
 */
export const EngineView = z.object({
  name: z.string(),
  kind: EngineManifest.shape.kind,
  description: z.string(),
  accepts: z.array(EngineDataType),
  protocol: EngineManifest.shape.protocol,
  image: z.string().describe('the image reference the manifest names'),
  imageId: z.string().nullable().describe('the image ID that reference resolves to now (`process:<command>` for a process engine); null when the image is missing or its runner did not answer'),
  imagePresent: z.boolean().nullable().describe('whether the image is on the Docker host; null when its runner (Docker) did not answer'),
  imageError: z.string().optional().describe('why the runner could not be asked'),
  concurrency: z.number().int().describe('containers at once per engine worker'),
  timeout: z.number().int().describe('milliseconds one run may take'),
  sizelimit: z.number().int().describe('largest upload, in bytes'),
});
export type EngineView = z.infer<typeof EngineView>;

export const EngineList = z.object({
  engines: z.array(EngineView),
  errors: z.array(z.string()).describe('manifests that were skipped, and why'),
});
export type EngineList = z.infer<typeof EngineList>;

/** Every loaded engine with what it runs looked up by its runner (the image on the Docker host), all lookups at once. */
export async function listEngines(registry: EngineRegistry, runners: EngineRunners): Promise<EngineList> {
  const engines = await Promise.all(registry.list().map(async ({ manifest }): Promise<EngineView> => {
    const view = {
      name: manifest.name,
      kind: manifest.kind,
      description: manifest.description,
      accepts: manifest.accepts,
      protocol: manifest.protocol,
      image: manifest.image,
      concurrency: manifest.concurrency,
      timeout: manifest.timeout,
      sizelimit: manifest.sizelimit,
    };
    const runner = runners.find(manifest.runner);
    if (!runner) return { ...view, imageId: null, imagePresent: null, imageError: `runner: ${manifest.runner} is not available to this process` };
    try {
      const id = await withTimeout(runner.identify(manifest), INSPECT_TIMEOUT_MS);
      return id ? { ...view, imageId: id, imagePresent: true } : { ...view, imageId: null, imagePresent: false };
    } catch (error) {
      return { ...view, imageId: null, imagePresent: null, imageError: `${runner.title} did not answer: ${(error as Error).message.split('\n')[0]}` };
    }
  }));
  return { engines, errors: registry.errors };
}

export async function engineRoutes(app: FastifyInstance, deps: { registry: EngineRegistry; runners: EngineRunners }): Promise<void> {
  app.get('/v1/engines', {
    config: { role: 'read' },
    schema: {
      tags: ['engines'], summary: 'The engines, the image each one runs now, and the manifests that were skipped',
      response: { 200: jsonSchema(EngineList), ...errorResponses() },
    },
  }, () => listEngines(deps.registry, deps.runners));
}
