import { createReadStream } from 'node:fs';
import { dirname, join } from 'node:path';
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema } from 'fastify';
import fp from 'fastify-plugin';
import { version } from '../package.json';

/**
 * The OpenAPI document at `/openapi.json`, built from the schemas the routes declare, and a docs page
 * at `/docs` drawn by Swagger UI from the npm package's files (it works with no internet). Register it
 * before any route, since it learns routes as they are added.
 */
export const openapi = fp(async (app: FastifyInstance) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Docket',
        version,
        description: 'Security investigations as durable Temporal workflows. Send an API key as '
          + '`Authorization: Bearer <key>`; each operation says the least role it needs (read < analyze < respond < admin).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a Docket API key, dk_...' } } },
    },
    transformObject: (documents) => ('openapiObject' in documents ? withLinks(documents.openapiObject) : documents.swaggerObject),
    transform: ({ schema, url, route }) => {
      const role = route.config?.role;
      if (!role) return { schema, url };
      const documented = (schema ?? {}) as FastifySchema & { description?: string };
      return {
        url,
        schema: {
          ...documented,
          description: [documented.description, `Needs the \`${role}\` role.`].filter(Boolean).join(' '),
          security: [{ bearer: [] }],
        } as FastifySchema,
      };
    },
  });

  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () => app.swagger());
  await app.register(docsPage);
});

type Document = Record<string, any>;

// A JSON pointer in a URI fragment: `~` and `/` escaped as RFC 6901 says, then `{` `}` percent-encoded.
const operation = (path: string, method: string) => `#/paths/${encodeURIComponent(path.replaceAll('~', '~0').replaceAll('/', '~1'))}/${method}`;

/** Where the id an answer gives can be used next (OpenAPI links): clients and fuzzers follow them. */
const LINKS: Array<{ path: string; method: string; status: string; id: string; to: Array<[name: string, path: string, method: string]> }> = [
  {
    path: '/v1/investigations', method: 'post', status: '202', id: '$response.body#/id',
    to: [
      ['read', '/v1/investigations/{id}', 'get'],
      ['result', '/result/{id}', 'get'],
      ['approve', '/v1/investigations/{id}/approve', 'post'],
      ['reject', '/v1/investigations/{id}/reject', 'post'],
      ['cancel', '/v1/investigations/{id}/cancel', 'post'],
    ],
  },
  {
    path: '/{engine}/upload', method: 'post', status: '200', id: '$response.body#/jobid',
    to: [['result', '/result/{id}', 'get'], ['link', '/link/{id}', 'get'], ['read', '/v1/investigations/{id}', 'get']],
  },
];

function withLinks(document: Document): Document {
  for (const { path, method, status, id, to } of LINKS) {
    const response = document.paths?.[path]?.[method]?.responses?.[status];
    if (!response) continue;
    response.links = Object.fromEntries(to.filter(([, target, verb]) => document.paths?.[target]?.[verb])
      .map(([name, target, verb]) => [name, { operationRef: operation(target, verb), parameters: { id } }]));
  }
  return document;
}

const JAVASCRIPT = 'text/javascript; charset=utf-8';

// A Map, not an object literal: a name such as `constructor` or `__proto__` must not find anything.
const ASSETS = new Map<string, string>([
  ['swagger-ui.css', 'text/css; charset=utf-8'],
  ['swagger-ui-bundle.js', JAVASCRIPT],
]);

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Docket API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to an outside validation service.
const INIT = `SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', validatorUrl: null, deepLinking: false, docExpansion: 'list' });\n`;

// Only this origin's files: the page works offline, and nothing injected into it could load more.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

async function docsPage(app: FastifyInstance): Promise<void> {
  const assets = dirname(require.resolve('swagger-ui-dist/package.json'));
  const hidden = { schema: { hide: true } };
  app.get('/docs', hidden, async (_request, reply) => {
    reply.header('content-security-policy', CSP).type('text/html; charset=utf-8');
    return PAGE;
  });
  app.get('/docs/init.js', hidden, async (_request, reply) => reply.type(JAVASCRIPT).send(INIT));
  app.get<{ Params: { asset: string } }>('/docs/:asset', hidden, async (request, reply) => {
    const { asset } = request.params;
    const type = ASSETS.get(asset);
    if (!type) return reply.callNotFound();
    const file = createReadStream(join(assets, asset));
    // Until fastify pipes it, nothing listens: an unreadable file would otherwise end the process.
    file.once('error', (error) => request.log.error({ err: error, asset }, 'a Swagger UI file cannot be read'));
    reply.header('cache-control', 'public, max-age=3600').type(type);
    return reply.send(file);
  });
}
