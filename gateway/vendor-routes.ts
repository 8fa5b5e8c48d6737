import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CONSOLE_CSP } from './console-routes';

/**
 * Third-party files the console loads, served from the installed npm packages under
 * `/console/vendor/`, so the page loads nothing from elsewhere and its CSP stays `'self'` only.
 * Chart.js (MIT) draws the dashboard: its UMD build is one self-contained file that needs neither
 * eval nor inline styles (it sizes canvases through the CSSOM, which `style-src` does not govern).
 */
function vendorFiles(): Map<string, string> {
  // chart.js exports only its module entry points; its UMD build sits beside the CommonJS one.
  const chartDist = dirname(require.resolve('chart.js'));
  return new Map([['chart.umd.min.js', join(chartDist, 'chart.umd.min.js')]]);
}

const HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Changes only when the package is upgraded; revalidating is cheap beside a stale library.
  'cache-control': 'no-cache',
};

export async function vendorRoutes(app: FastifyInstance): Promise<void> {
  // A Map fixed at start: a request names one of these files or gets a 404, never a path.
  const files = vendorFiles();
  app.get<{ Params: { file: string } }>('/console/vendor/:file', { schema: { hide: true }, config: { rateLimit: false } }, async (request, reply) => {
    const path = files.get(request.params.file);
    if (!path) return reply.callNotFound();
    const { size } = await stat(path);
    const stream = createReadStream(path);
    // Nothing listens until fastify pipes the stream: an error before then would end the process.
    stream.on('error', (error) => reply.log.error({ err: error, file: request.params.file }, 'a vendored console file cannot be read'));
    return reply.headers(HEADERS).header('content-length', size).type('text/javascript; charset=utf-8').send(stream);
  });
}
