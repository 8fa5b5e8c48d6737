import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { DocketMetrics } from '../infra/metrics';
import { errorResponses } from './schemas';

/**
 * Counts every answer by route pattern, and serves this process's registry on `/metrics`: the gateway's own
 * series, plus the engine workers' only under `docket all` (engines roles serve theirs on their role server).
 */
export const metricsPlugin = fp(async (app: FastifyInstance, options: { metrics: DocketMetrics }) => {
  const { metrics } = options;

  app.addHook('onResponse', async (request, reply) => {
    // Unmatched URLs share one label: a scanner's random paths must not grow the series without bound.
    metrics.httpRequest(request.routeOptions.url ?? '(no route)', request.method, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.get('/metrics', {
    config: { role: 'read', rateLimit: false },
    schema: {
      tags: ['operations'], summary: 'Prometheus metrics (text exposition format)',
      response: {
        200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
        ...errorResponses(),
      },
    },
  }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
});
