import multipart from '@fastify/multipart';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance } from 'fastify';
import type { BlobStore } from '../activities/blob-store';
import type { EngineRegistry } from '../activities/engine-registry';
import { errorHandling } from './errors';
import { Investigations } from './investigations';
import { menagerieRoutes } from './menagerie';

export interface GatewayDeps {
  client: Client;
  blobs: BlobStore;
  registry: EngineRegistry;
  /** The main worker's task queue, where investigations start. */
  taskQueue: string;
  logger?: boolean | { level: string };
}

/** The HTTP gateway; it talks to Temporal only through the client. */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
  });
  await app.register(errorHandling);
  await app.register(multipart, { throwFileSizeLimit: true });
  const investigations = new Investigations(deps.client, deps.taskQueue);
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(menagerieRoutes, { registry: deps.registry, blobs: deps.blobs, investigations });
  return app;
}
