import { createReadStream, readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Where the console's files are: plain HTML, CSS and JavaScript modules, served as they are. */
export const CONSOLE_DIR = join(__dirname, 'console');

// A Map, so a file named `x.constructor` is not taken for a known type by way of the prototype.
const TYPES = new Map<string, string>([
  ['.html', 'text/html; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  // Browsers refuse a module script served with any type other than a JavaScript one.
  ['.js', 'text/javascript; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
]);

/**
 * Only this origin's files, no inline script or style, no plugins, no framing: whatever text an
 * investigation carries, the page cannot be made to load or run anything else. (Result downloads are
 * Blob URLs opened by a link, which no fetch directive governs.)
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The files change with Docket's version; revalidating costs little and never serves a stale page.
  'cache-control': 'no-cache',
};

interface ConsoleFile {
  path: string;
  type: string;
}

/**
 * The files served, fixed when the gateway starts: a request names one of them or gets a 404, so
 * no path a client sends ever reaches the filesystem.
 */
function consoleFiles(dir: string): Map<string, ConsoleFile> {
  const files = new Map<string, ConsoleFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES.get(extname(name));
    if (!type) continue;
    files.set(name, { path: join(dir, name), type });
  }
  if (!files.has('index.html')) throw new Error(`the console has no index.html in ${dir}`);
  return files;
}

/** The web console at `/console/` (and `/`, which redirects there). Its API calls carry their own key. */
export async function consoleRoutes(app: FastifyInstance, options: { dir?: string } = {}): Promise<void> {
  const files = consoleFiles(options.dir ?? CONSOLE_DIR);
  // Static files are public, cheap and fetched together on every page load: keep them out of the
  // OpenAPI document and out of the per-caller request budget the API calls need.
  const route = { schema: { hide: true }, config: { rateLimit: false as const } };

  const send = async (name: string, reply: FastifyReply) => {
    const file = files.get(name);
    if (!file) return reply.callNotFound();
    // Sized now, not at start, so a file edited while the gateway runs is served whole.
    const { size } = await stat(file.path);
    const stream = createReadStream(file.path);
    // Until fastify pipes it, nothing listens: a file removed since the stat would end the process.
    stream.on('error', (error) => reply.log.error({ err: error, file: name }, 'a console file cannot be read'));
    return reply.headers(HEADERS).header('content-length', size).type(file.type).send(stream);
  };

  app.get('/', route, async (_request, reply) => reply.redirect('/console/'));
  app.get('/console', route, async (_request, reply) => reply.redirect('/console/'));
  app.get('/console/', route, async (_request, reply) => send('index.html', reply));
  app.get<{ Params: { file: string } }>('/console/:file', route, async (request, reply) => send(request.params.file, reply));
}
