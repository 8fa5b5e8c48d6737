import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { DocketClient } from '../../contract/client';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { EngineRegistry } from '../../infra/engine-registry';
import { anonymousPolicy } from '../../gateway/auth';
import { KeyStore } from '../../gateway/keys';
import { buildGateway } from '../../gateway/server';
import { dockerRunners } from '../helpers/engines';
import { listen, type Send } from '../helpers/http';
import { ROOT, temporalAddress } from '../helpers/system';

/**
 * The OpenAPI document against the routes fastify actually registered (its onRoute hook), so a route
 * added without a schema, or a status a handler answers but the document omits, fails here.
 */

interface Registered {
  method: string;
  url: string;
  schema: Record<string, any>;
}

/** Answered by the hooks in front of every route (auth, site guard, rate limit) and by any failure. */
const EVERY_ROUTE = [401, 403, 429, 500];

/**
 * The answers each route gives besides those: its success and the refusals its handler and schemas
 * throw. A new route must be listed here, which is the point: someone decides what it answers.
 */
const ANSWERS: Record<string, number[]> = {
  'GET /healthz': [200],
  'GET /readyz': [200, 503],
  'GET /metrics': [200],
  'GET /v1/engines': [200],
  'POST /:engine/upload': [200, 400, 404, 413, 415],
  'GET /result/:id': [200, 400, 404],
  'GET /link/:id': [200, 400, 404, 409],
  'POST /v1/investigations': [202, 400, 413, 415],
  'GET /v1/investigations': [200, 400],
  'GET /v1/investigations/:id': [200, 400, 404],
  'POST /v1/investigations/:id/approve': [200, 400, 404, 409],
  'POST /v1/investigations/:id/reject': [200, 400, 404, 409],
  'POST /v1/investigations/:id/cancel': [202, 400, 404, 409],
  'GET /v1/schedules': [200],
  'GET /v1/stats': [200, 400],
  'GET /v1/compliance/findings': [200, 400],
  'POST /v1/schedules/:id/pause': [200, 400, 404],
  'POST /v1/schedules/:id/unpause': [200, 400, 404],
  'POST /v1/schedules/:id/trigger': [200, 400, 404],
  'POST /v1/schedules/:id/backfill': [200, 400, 404],
  'POST /v1/events/compliance': [200, 202, 400, 413, 503],
  'GET /api/status': [200],
  'GET /api/user/current': [200],
  'GET /api/analyzer': [200, 400],
  'POST /api/analyzer/_search': [200, 400, 413, 415],
  'GET /api/analyzer/:id': [200, 400, 404],
  'GET /api/analyzer/type/:dataType': [200, 400],
  'GET /api/analyzerdefinition': [200],
  'POST /api/analyzer/:id/run': [200, 400, 404, 413, 415],
  'GET /api/responder': [200, 400],
  'POST /api/responder/_search': [200, 400, 413, 415],
  'GET /api/responder/:id': [200, 400, 404],
  'GET /api/responder/type/:dataType': [200, 400],
  'POST /api/responder/:id/run': [200, 400, 404, 413, 415],
  'GET /api/job/:id': [200, 400, 404],
  'GET /api/job/:id/report': [200, 400, 404],
  'GET /api/job/:id/waitreport': [200, 400, 404],
  'GET /api/job/:id/artifacts': [200, 400, 404],
  'DELETE /api/job/:id': [204, 400, 404],
  'POST /api/job/_search': [200, 400, 413, 415],
  'GET /api/datastore/:id': [200, 400, 404],
};

/** Kept out of the document on purpose: static files, the document itself, Slack's signed callbacks. */
const HIDDEN = [
  'GET /', 'GET /console', 'GET /console/', 'GET /console/:file', 'GET /console/vendor/:file', 'GET /docs', 'GET /docs/init.js', 'GET /docs/:asset',
  'GET /openapi.json',
];

/** Request bodies by route: the media types each one documents. */
const BODIES: Record<string, string[]> = {
  'POST /:engine/upload': ['multipart/form-data'],
  'POST /v1/investigations': ['application/json', 'multipart/form-data'],
  'POST /v1/events/compliance': ['application/json', 'text/plain'],
  'POST /api/analyzer/:id/run': ['application/json', 'multipart/form-data'],
};

const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const pathParams = (url: string) => [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1]);

describe('the OpenAPI document', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'docket-openapi-'));
  const routes: Registered[] = [];
  let connection: Connection;
  let app: FastifyInstance;
  let send: Send;
  let document: any;
  let adminKey: string;

  beforeAll(async () => {
    connection = await Connection.connect({ address: temporalAddress() });
    const keys = new KeyStore(join(dataDir, 'keys.json'));
    adminKey = (await keys.create('openapi-admin', 'admin')).key;
    const blobs = await new FsBlobStore(join(dataDir, 'blobs')).init();
    app = await buildGateway({
      temporal: new DocketClient(new Client({ connection }), `t${randomBytes(4).toString('hex')}-docket`, blobs),
      blobs,
      registry: await EngineRegistry.load(join(ROOT, 'engines')),
      runners: await dockerRunners(),
      keys,
      anonymous: anonymousPolicy('none', '127.0.0.1'),
      rateLimit: 0,
      audit: () => undefined,
      queuePrefix: `t${randomBytes(4).toString('hex')}-`,
      onRoute: (route: RouteOptions) => {
        for (const method of [route.method].flat()) {
          routes.push({ method: method.toUpperCase(), url: route.url, schema: (route.schema ?? {}) as Record<string, any> });
        }
      },
    });
    send = await listen(app);
    document = (await send({ method: 'GET', url: '/openapi.json' })).json();
  });

  afterAll(async () => {
    await app?.close();
    await connection?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  // fastify adds a HEAD twin to every GET, and the document leaves those out as swagger does by default.
  const documentedRoutes = () => routes.filter((route) => route.method !== 'HEAD' && !route.schema.hide);
  const name = (route: Registered) => `${route.method} ${route.url}`;
  const operationOf = (route: Registered) => document.paths[openApiPath(route.url)]?.[route.method.toLowerCase()];

  it('validates as an OpenAPI 3.0 document', () => {
    const file = join(dataDir, 'openapi.json');
    writeFileSync(file, JSON.stringify(document));
    const cli = join(ROOT, 'node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js');
    const validation = spawnSync(process.execPath, [cli, file], { encoding: 'utf8' });
    // The validator's own words when it refuses, so a failure says which part is wrong.
    expect(validation.status === 0 ? 'valid' : validation.stdout + validation.stderr).toBe('valid');
  });

  it('hides only the static files, the document itself and nothing else', () => {
    const hidden = routes.filter((route) => route.method !== 'HEAD' && route.schema.hide).map(name).sort();
    expect(hidden).toEqual([...HIDDEN].sort());
  });

  it('knows what every registered route answers, so a new route cannot go undocumented', () => {
    expect(documentedRoutes().map(name).sort()).toEqual(Object.keys(ANSWERS).sort());
  });

  it('documents every registered route with each path parameter it takes', () => {
    const missing: string[] = [];
    for (const route of documentedRoutes()) {
      const operation = operationOf(route);
      if (!operation) {
        missing.push(`${name(route)}: not in the document`);
        continue;
      }
      const documented = (operation.parameters ?? []).filter((parameter: any) => parameter.in === 'path').map((parameter: any) => parameter.name);
      for (const parameter of pathParams(route.url)) {
        if (!documented.includes(parameter)) missing.push(`${name(route)}: path parameter ${parameter}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('documents the query parameters each route validates', () => {
    const missing: string[] = [];
    for (const route of documentedRoutes()) {
      const declared = Object.keys(route.schema.querystring?.properties ?? {});
      const documented = (operationOf(route)?.parameters ?? []).filter((parameter: any) => parameter.in === 'query').map((parameter: any) => parameter.name);
      for (const parameter of declared) if (!documented.includes(parameter)) missing.push(`${name(route)}: query ${parameter}`);
    }
    expect(missing).toEqual([]);
    const list = document.paths['/v1/investigations'].get.parameters.map((parameter: any) => parameter.name);
    expect(list).toEqual(expect.arrayContaining(['verdict', 'source', 'engine', 'type', 'status', 'pageSize', 'pageToken']));
  });

  it('documents a request body for every POST, multipart ones as multipart/form-data', () => {
    const missing: string[] = [];
    for (const route of documentedRoutes().filter((one) => one.method === 'POST')) {
      const content = Object.keys(operationOf(route)?.requestBody?.content ?? {});
      const expected = BODIES[name(route)] ?? ['application/json'];
      if (content.sort().join() !== [...expected].sort().join()) missing.push(`${name(route)}: documents ${content.join(', ') || 'no body'}, expected ${expected.join(', ')}`);
    }
    expect(missing).toEqual([]);
    const upload = document.paths['/{engine}/upload'].post.requestBody.content['multipart/form-data'].schema;
    expect(upload.properties.upload).toEqual(expect.objectContaining({ type: 'string', format: 'binary' }));
  });

  it('documents every status each route answers, errors in the one error shape', () => {
    const missing: string[] = [];
    for (const route of documentedRoutes()) {
      const responses = operationOf(route)?.responses ?? {};
      const expected = [...(ANSWERS[name(route)] ?? []), ...EVERY_ROUTE];
      for (const status of expected) {
        const answer = responses[String(status)];
        if (!answer) {
          missing.push(`${name(route)}: ${status}`);
          continue;
        }
        // The Cortex API (/api) answers errors in Cortex's shape, {"type", "message"}, which its clients read.
        const shape = route.url.startsWith('/api/') ? '"type"' : '"error"';
        if (status >= 400 && !JSON.stringify(answer.content?.['application/json']?.schema ?? {}).includes(shape)) {
          missing.push(`${name(route)}: ${status} is not the error shape`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('links the id a new investigation answers to the operations that take it', () => {
    const links = document.paths['/v1/investigations'].post.responses['202'].links;
    expect(Object.keys(links).sort()).toEqual(['approve', 'cancel', 'read', 'reject', 'result']);
    for (const link of Object.values<any>(links)) {
      const [, pointer] = decodeURIComponent(link.operationRef).split('#/paths/');
      const [path, method] = [pointer.slice(0, pointer.lastIndexOf('/')).replaceAll('~1', '/').replaceAll('~0', '~'), pointer.slice(pointer.lastIndexOf('/') + 1)];
      expect({ path, method, documented: Boolean(document.paths[path]?.[method]) }).toEqual({ path, method, documented: true });
      expect(link.parameters).toEqual({ id: '$response.body#/id' });
    }
  });

  it('refuses a query the schema rejects with the same 400 the handler gave, naming the field', async () => {
    const answer = await send({ method: 'GET', url: '/v1/investigations?pageSize=0', headers: { authorization: `Bearer ${adminKey}` } });
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error).toEqual(expect.objectContaining({ code: 'bad_request', message: expect.stringMatching(/^the query is not valid: pageSize/) }));
  });

  it('refuses a body the schema rejects with a 400 that says what to fix, before any schedule is looked up', async () => {
    const answer = await send({
      method: 'POST',
      url: '/v1/schedules/nightly/backfill',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ start: '2026-01-02T00:00:00Z', end: '2026-01-01T00:00:00Z' }),
    });
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error).toEqual(expect.objectContaining({ code: 'bad_request', message: 'the backfill is not valid: end: must be after start' }));
  });

  it('refuses an empty investigation id in the path with 400, not a Temporal error', async () => {
    const answer = await send({ method: 'GET', url: '/v1/investigations/', headers: { authorization: `Bearer ${adminKey}` } });
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error.message).toMatch(/^the path is not valid: id/);
  });
});
