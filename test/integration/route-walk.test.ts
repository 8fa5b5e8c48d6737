import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DocketClient } from '../../contract/client';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { EngineRegistry } from '../../infra/engine-registry';
import { silentLogger } from '../../infra/log';
import { anonymousPolicy } from '../../gateway/auth';
import { KeyStore } from '../../gateway/keys';
import { buildGateway } from '../../gateway/server';
import { dockerRunners } from '../helpers/engines';
import { deliver, FakeSlack } from '../helpers/fake-slack';
import { listen, type Send, type Sent } from '../helpers/http';
import { ROOT, temporalAddress } from '../helpers/system';

/**
 * Every route the gateway registers, as fastify reports them while they are added (so a new route is
 * walked without anyone listing it here), called with the values an attacker tries first.
 */

interface WalkedRoute {
  method: string;
  url: string;
  /** The query parameters the route declares, if it declares any. */
  query: string[];
}

/** Path and query values, written as they go on the wire. */
const HOSTILE: Array<[label: string, value: string]> = [
  ['__proto__', '__proto__'],
  ['constructor', 'constructor'],
  ['toString', 'toString'],
  ['hasOwnProperty', 'hasOwnProperty'],
  ['encoded traversal', '..%2f..%2f'],
  ['encoded traversal to /etc/passwd', '..%2F..%2Fetc%2Fpasswd'],
  ['NUL', '%00'],
  ['a 4 kB name', 'n'.repeat(4096)],
  ['accents and emoji', encodeURIComponent('é😀')],
  ['right-to-left marks', encodeURIComponent('\u202egpj.exe\u200f')],
  ['empty', ''],
];

/** Tried in turn on every route, beside the ones a route declares, so each name meets hostile values. */
const QUERY_NAMES = ['pageToken', 'pageSize', 'engine', 'job', 'type', 'verdict', 'status', 'source', '__proto__', 'constructor'];

const PARALLEL = 6;

function methodsOf(route: RouteOptions): string[] {
  return (Array.isArray(route.method) ? route.method : [route.method]).map((method) => method.toUpperCase());
}

function declaredQuery(route: RouteOptions): string[] {
  const properties = (route.schema?.querystring as { properties?: Record<string, unknown> } | undefined)?.properties;
  return properties ? Object.keys(properties) : [];
}

/** The route's URL with every parameter and wildcard replaced by `value`. */
function fill(url: string, value: string): string {
  return url.replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, value).replace(/\*/g, value);
}

/** A JSON body whose keys are the names a careless lookup finds on every object. */
function hostileBody(value: string): string {
  const text = decodeURIComponent(value.replace(/%00/g, ''));
  return JSON.stringify({ toString: text, hasOwnProperty: text, valueOf: text, constructor: text, isPrototypeOf: text });
}

/** Runs `work` over `items`, at most `limit` at once. */
async function inTurn<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

describe('the gateway under hostile requests to every registered route', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'docket-route-walk-'));
  const routes: WalkedRoute[] = [];
  const signingSecret = randomBytes(16).toString('hex');
  let connection: Connection;
  let app: FastifyInstance;
  let slack: FakeSlack;
  let send: Send;
  let baseUrl: string;
  const keys = new KeyStore(join(dataDir, 'keys.json'));
  const key: Partial<Record<'analyze' | 'admin', string>> = {};

  beforeAll(async () => {
    connection = await Connection.connect({ address: temporalAddress() });
    slack = await new FakeSlack(`xoxb-${randomBytes(8).toString('hex')}`).start();
    for (const role of ['analyze', 'admin'] as const) key[role] = (await keys.create(`walk-${role}`, role)).key;
    app = await buildGateway({
      temporal: new DocketClient(new Client({ connection }), `t${randomBytes(4).toString('hex')}-docket`),
      blobs: await new FsBlobStore(join(dataDir, 'blobs')).init(),
      registry: await EngineRegistry.load(join(ROOT, 'engines')),
      runners: await dockerRunners(),
      keys,
      anonymous: anonymousPolicy('none', '127.0.0.1'),
      // The walk is about what handlers do with input; the throttles have their own tests.
      rateLimit: 0,
      audit: () => undefined,
      queuePrefix: `t${randomBytes(4).toString('hex')}-`,
      slack: {
        settings: { botToken: slack.botToken, signingSecret, channels: [], approvers: [], apiUrl: slack.apiUrl, links: { console: 'http://127.0.0.1/console/', temporalUi: 'http://127.0.0.1:8233', namespace: 'default' } },
        log: silentLogger,
      },
      onRoute: (route) => {
        for (const method of methodsOf(route)) routes.push({ method, url: route.url, query: declaredQuery(route) });
      },
    });
    // fastify adds a HEAD twin to each GET that runs the GET's handler, which the walk calls already.
    const gets = new Set(routes.filter((route) => route.method === 'GET').map((route) => route.url));
    routes.splice(0, routes.length, ...routes.filter((route) => !(route.method === 'HEAD' && gets.has(route.url))));
    send = await listen(app);
    baseUrl = `http://${(app.server.address() as { address: string }).address}:${(app.server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await slack?.close();
    await connection?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Sends `sent`, then asks /healthz; returns what went wrong, if anything. */
  async function probe(sent: Sent, what: string): Promise<string | undefined> {
    let fault: string | undefined;
    try {
      const answer = await send(sent);
      if (answer.statusCode >= 500) fault = `${what}: ${answer.statusCode} ${answer.body.slice(0, 200)}`;
    } catch (error) {
      fault = `${what}: no answer (${(error as Error).message})`;
    }
    const health = await send({ method: 'GET', url: '/healthz' }).catch((error: Error) => ({ statusCode: 0, body: error.message }));
    if (health.statusCode !== 200) return `${fault ?? what}; then GET /healthz answered ${health.statusCode} ${health.body.slice(0, 100)}`;
    return fault;
  }

  function request(route: WalkedRoute, value: string, turn: number, authorization?: string): Sent {
    const names = [...route.query, ...QUERY_NAMES];
    const name = names[turn % names.length];
    const headers: Record<string, string> = {};
    if (authorization) headers.authorization = authorization;
    const sent: Sent = { method: route.method, url: `${fill(route.url, value)}?${name}=${value}`, headers };
    if (!['GET', 'HEAD', 'OPTIONS'].includes(route.method)) {
      headers['content-type'] = 'application/json';
      sent.body = hostileBody(value);
    }
    return sent;
  }

  it('learns the routes from fastify as they are added, the parameterized and public ones included', () => {
    const seen = routes.map((route) => `${route.method} ${route.url}`);
    for (const expected of ['GET /docs/:asset', 'GET /console/:file', 'POST /:engine/upload', 'GET /link/:id', 'GET /v1/investigations/:id', 'POST /v1/schedules/:id/pause', 'POST /slack/events', 'GET /healthz']) {
      expect(seen).toContain(expected);
    }
  });

  it('answers every route and method with hostile path parameters and query values below 500, with an admin key, and /healthz answers after each', async () => {
    const cases = routes.flatMap((route, index) => HOSTILE.map(([label, value], turn) => ({ route, label, value, turn: turn + index })));
    const faults: string[] = [];
    await inTurn(cases, PARALLEL, async ({ route, label, value, turn }) => {
      const sent = request(route, value, turn, `Bearer ${key.admin}`);
      const fault = await probe(sent, `${route.method} ${route.url} with ${label} (${sent.url.slice(0, 120)})`);
      if (fault) faults.push(fault);
    });
    expect(faults).toEqual([]);
  });

  it('answers every route below 500 without a key and with an analyze key, given names found on every object', async () => {
    const cases = routes.flatMap((route, index) => [undefined, `Bearer ${key.analyze}`].flatMap((authorization) =>
      HOSTILE.slice(0, 2).map(([label, value], turn) => ({ route, label, value, turn: turn + index, authorization }))));
    const faults: string[] = [];
    await inTurn(cases, PARALLEL, async ({ route, label, value, turn, authorization }) => {
      const sent = request(route, value, turn, authorization);
      const fault = await probe(sent, `${route.method} ${route.url} with ${label}, ${authorization ? 'analyze key' : 'no key'}`);
      if (fault) faults.push(fault);
    });
    expect(faults).toEqual([]);
  });

  it('answers hostile Authorization, Content-Type and oversized headers below 500 on a sample of routes', async () => {
    const sample = ['GET /healthz', 'GET /v1/engines', 'GET /v1/investigations', 'POST /v1/investigations', 'POST /:engine/upload', 'GET /docs/:asset', 'POST /slack/events', 'POST /v1/events/compliance'];
    const picked = routes.filter((route) => sample.includes(`${route.method} ${route.url}`));
    expect(picked).toHaveLength(sample.length);
    const headerSets: Array<[string, Record<string, string>]> = [
      ['Bearer __proto__', { authorization: 'Bearer __proto__' }],
      ['Bearer constructor', { authorization: 'Bearer constructor' }],
      ['Bearer with a 4 kB key', { authorization: `Bearer ${'k'.repeat(4096)}` }],
      ['Basic credentials', { authorization: 'Basic X19wcm90b19fOmNvbnN0cnVjdG9y' }],
      ['a 12 kB header', { 'x-filler': 'h'.repeat(12 * 1024) }],
      ['a 64 kB header', { 'x-filler': 'h'.repeat(64 * 1024) }],
      ['content-type __proto__', { authorization: `Bearer ${key.admin}`, 'content-type': '__proto__' }],
      ['content-type constructor', { authorization: `Bearer ${key.admin}`, 'content-type': 'constructor/toString' }],
      ['multipart with boundary __proto__', { authorization: `Bearer ${key.admin}`, 'content-type': 'multipart/form-data; boundary=__proto__' }],
      ['accept __proto__', { authorization: `Bearer ${key.admin}`, accept: '__proto__' }],
    ];
    const cases = picked.flatMap((route) => headerSets.map(([label, headers]) => ({ route, label, headers })));
    const faults: string[] = [];
    await inTurn(cases, PARALLEL, async ({ route, label, headers }) => {
      const sent: Sent = { method: route.method, url: fill(route.url, 'fileinfo'), headers };
      if (route.method === 'POST') sent.body = '--__proto__\r\nContent-Disposition: form-data; name="__proto__"\r\n\r\nconstructor\r\n--__proto__--\r\n';
      const fault = await probe(sent, `${route.method} ${route.url} with ${label}`);
      if (fault) faults.push(fault);
    });
    expect(faults).toEqual([]);
  });

  it('answers a Slack-signed interaction whose payload is not an object with 400', async () => {
    for (const payload of ['null', '[]', '"constructor"', '42']) {
      const answer = await deliver(baseUrl, { form: { payload } }, { secret: signingSecret });
      expect({ payload, status: answer.status }).toEqual({ payload, status: 400 });
    }
  });

  it('serves the docs assets by their own names only: GET /docs/constructor is a 404 and the stylesheet still loads', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'valueOf']) {
      expect((await send({ method: 'GET', url: `/docs/${name}` })).statusCode).toBe(404);
    }
    const css = await send({ method: 'GET', url: '/docs/swagger-ui.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
  });
});
