import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DocketClient } from '../../contract/client';
import Docker from 'dockerode';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { BlobStore } from '../../infra/blob-store';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { EngineRegistry } from '../../infra/engine-registry';
import { DocketMetrics } from '../../infra/metrics';
import { anonymousPolicy } from '../../gateway/auth';
import { KeyStore } from '../../gateway/keys';
import { buildGateway, type GatewayDeps } from '../../gateway/server';
import { freePort } from '../../system/temporal-dev';
import { dockerRunners } from '../helpers/engines';
import { enginesFolder, fileinfoManifest } from '../helpers/fixtures';
import { type Answer, listen, type Send } from '../helpers/http';
import { ROOT, temporalAddress } from '../helpers/system';

const SECRET_CONFIG = 'config-secret-5f1e0c';
const SECRET_ENV = 'env-secret-9b2d44';

/** The gateway's own API (auth, rate limit, audit, health, metrics, engines, OpenAPI) on real Temporal and Docker. */
describe('gateway API', () => {
  const enginesDir = enginesFolder([
    fileinfoManifest,
    {
      ...fileinfoManifest, name: 'secretive', image: 'docket/never-built:0', description: 'holds secrets in its manifest',
      config: { api_key: SECRET_CONFIG }, env: { TOKEN: SECRET_ENV },
    },
  ]);
  mkdirSync(join(enginesDir, 'broken'));
  writeFileSync(join(enginesDir, 'broken', 'engine.yaml'), 'name: broken\nkind: wizard\n');

  const apps: FastifyInstance[] = [];
  const connections: Connection[] = [];
  let client: Client;
  let registry: EngineRegistry;
  let blobs: BlobStore;
  let keys: KeyStore;
  const key: Record<'read' | 'analyze' | 'admin', { secret: string; id: string }> = {} as never;
  const docker = new Docker();

  beforeAll(async () => {
    const connection = await Connection.connect({ address: temporalAddress() });
    connections.push(connection);
    client = new Client({ connection });
    registry = await EngineRegistry.load(enginesDir);
    const dataDir = mkdtempSync(join(tmpdir(), 'docket-gateway-'));
    blobs = await new FsBlobStore(join(dataDir, 'blobs')).init();
    keys = new KeyStore(join(dataDir, 'keys.json'));
    for (const role of ['read', 'analyze', 'admin'] as const) {
      const created = await keys.create(`${role}-key`, role);
      key[role] = { secret: created.key, id: created.info.id };
    }
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await Promise.all(connections.map((connection) => connection.close()));
  });

  async function gateway(overrides: Partial<GatewayDeps> = {}): Promise<{ send: Send; app: FastifyInstance; audit: string[]; metrics: DocketMetrics }> {
    const audit: string[] = [];
    const metrics = new DocketMetrics();
    const app = await buildGateway({
      temporal: new DocketClient(client, `t${randomBytes(4).toString('hex')}-docket`, blobs),
      blobs, registry, runners: await dockerRunners(), keys, metrics,
      anonymous: anonymousPolicy('none', '0.0.0.0'),
      rateLimit: 0,
      audit: (line) => audit.push(line),
      ...overrides,
    });
    apps.push(app);
    return { send: await listen(app), app, audit, metrics };
  }

  const bearer = (role: keyof typeof key) => ({ authorization: `Bearer ${key[role].secret}` });

  async function multipartUpload(content: string, field = 'upload'): Promise<{ body: Buffer; headers: Record<string, string> }> {
    const form = new FormData();
    form.append(field, new Blob([content]), 'sample.txt');
    const request = new Request('http://localhost/', { method: 'POST', body: form });
    return { body: Buffer.from(await request.arrayBuffer()), headers: { 'content-type': request.headers.get('content-type')! } };
  }

  describe('authentication and roles', () => {
    const protectedRoutes = [
      { method: 'POST', url: '/fileinfo/upload', route: 'POST /:engine/upload', needed: 'analyze' },
      { method: 'GET', url: '/result/some-job', route: 'GET /result/:id', needed: 'read' },
      { method: 'GET', url: '/link/some-job', route: 'GET /link/:id', needed: 'read' },
      { method: 'GET', url: '/v1/engines', route: 'GET /v1/engines', needed: 'read' },
      { method: 'GET', url: '/metrics', route: 'GET /metrics', needed: 'read' },
    ];

    it.each(protectedRoutes)('answers 401 to $method $url without a key, naming the $needed role and how to get a key', async ({ method, url, route, needed }) => {
      const { send } = await gateway();
      const response = await send({ method, url });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(response.json().error).toEqual({
        code: 'unauthorized',
        message: `${route} needs a key with the ${needed} role (this gateway takes no calls without a key): send "Authorization: Bearer <key>"; an admin creates one with: npm run keys -- create --name <name> --role ${needed}`,
        details: { needed },
      });
    });

    it.each(protectedRoutes)('answers 401 to $method $url with a key that was never issued, naming the $needed role', async ({ method, url, needed }) => {
      const { send } = await gateway();
      const response = await send({ method, url, headers: { authorization: `Bearer dk_${randomBytes(32).toString('base64url')}` } });
      expect(response.statusCode).toBe(401);
      expect(response.json().error).toEqual({
        code: 'unauthorized',
        message: `this key is not valid: it was never issued or has been revoked; ask for a key with the ${needed} role (an admin creates one with: npm run keys -- create --name <name> --role ${needed})`,
        details: { needed },
      });
    });

    it('answers 403 to an upload with a read key, naming the key and the role needed', async () => {
      const { send } = await gateway();
      const upload = await multipartUpload('x');
      const response = await send({ method: 'POST', url: '/fileinfo/upload', headers: { ...upload.headers, ...bearer('read') }, body: upload.body });
      expect(response.statusCode).toBe(403);
      expect(response.json().error).toMatchObject({ code: 'forbidden', details: { needed: 'analyze', role: 'read' } });
      expect(response.json().error.message).toContain(`key ${key.read.id} (read-key) has the read role; POST /:engine/upload needs analyze`);
    });

    it('lets a read key read and an analyze key upload', async () => {
      const { send } = await gateway();
      expect((await send({ method: 'GET', url: '/result/no-such-job', headers: bearer('read') })).statusCode).toBe(404);
      expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer('read') })).statusCode).toBe(200);
      const upload = await multipartUpload('allowed');
      const response = await send({ method: 'POST', url: '/fileinfo/upload', headers: { ...upload.headers, ...bearer('analyze') }, body: upload.body });
      expect(response.statusCode).toBe(200);
      expect(response.json().jobid).toMatch(/^[0-9a-f-]{36}$/);
    });

    it.each(['/healthz', '/readyz', '/openapi.json'])('serves %s without a key', async (url) => {
      const { send } = await gateway();
      expect((await send({ method: 'GET', url })).statusCode).toBe(200);
    });

    it('keeps the quick start working without a key on loopback until the first key exists', async () => {
      const fresh = new KeyStore(join(mkdtempSync(join(tmpdir(), 'docket-keys-')), 'keys.json'));
      const { send } = await gateway({ keys: fresh, anonymous: anonymousPolicy('auto', '127.0.0.1') });
      const first = await multipartUpload('quick start');
      expect((await send({ method: 'POST', url: '/fileinfo/upload', headers: first.headers, body: first.body })).statusCode).toBe(200);
      await fresh.create('first', 'admin');
      const second = await multipartUpload('quick start');
      expect((await send({ method: 'POST', url: '/fileinfo/upload', headers: second.headers, body: second.body })).statusCode).toBe(401);
    });
  });

  describe('rate limit', () => {
    it('answers 429 with Retry-After once a key has used its requests for the minute, and only for that key', async () => {
      const { send } = await gateway({ rateLimit: 3 });
      for (let i = 0; i < 3; i += 1) expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer('read') })).statusCode).toBe(200);
      const limited = await send({ method: 'GET', url: '/v1/engines', headers: bearer('read') });
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(limited.json().error).toMatchObject({ code: 'rate_limited', details: { limit: 3 } });
      expect(limited.json().error.message).toContain(`key ${key.read.id} (read-key) sent more than 3 requests this minute; try again in`);
      expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer('admin') })).statusCode).toBe(200);
    });

    it('counts callers without a key by address, and never limits the health probes', async () => {
      const { send } = await gateway({ rateLimit: 2, anonymous: anonymousPolicy('read', '0.0.0.0') });
      expect((await send({ method: 'GET', url: '/v1/engines' })).statusCode).toBe(200);
      expect((await send({ method: 'GET', url: '/v1/engines' })).statusCode).toBe(200);
      const limited = await send({ method: 'GET', url: '/v1/engines' });
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error.message).toContain('anonymous sent more than 2 requests');
      for (let i = 0; i < 5; i += 1) {
        expect((await send({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
        expect((await send({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      }
    });
  });

  describe('audit', () => {
    it('writes one line per state-changing call: who, what, which job and the outcome, and never the key', async () => {
      const { send, audit } = await gateway();
      const upload = await multipartUpload('audited');
      const response = await send({ method: 'POST', url: '/fileinfo/upload?note=x', headers: { ...upload.headers, ...bearer('analyze') }, body: upload.body });
      await send({ method: 'GET', url: '/v1/engines', headers: bearer('analyze') });
      expect(audit).toHaveLength(1);
      expect(JSON.parse(audit[0])).toEqual({
        time: expect.any(String),
        audit: 'http',
        caller: `key ${key.analyze.id} (analyze-key)`,
        key: { id: key.analyze.id, name: 'analyze-key', role: 'analyze' },
        ip: '127.0.0.1',
        method: 'POST',
        route: '/:engine/upload',
        ids: { engine: 'fileinfo', jobid: response.json().jobid },
        status: 200,
        ms: expect.any(Number),
      });
      expect(audit[0]).not.toContain(key.analyze.secret);
      expect(audit[0]).not.toMatch(/bearer|authorization|note=x/i);
    });

    it('audits refused calls too: anonymous, a key that was never issued, a role too low', async () => {
      const { send, audit } = await gateway();
      const madeUp = `dk_${randomBytes(32).toString('base64url')}`;
      await send({ method: 'POST', url: '/fileinfo/upload' });
      await send({ method: 'POST', url: '/fileinfo/upload', headers: { authorization: `Bearer ${madeUp}` } });
      await send({ method: 'DELETE', url: '/result/abc', headers: bearer('read') });
      await send({ method: 'POST', url: '/tiny/upload', headers: bearer('read') });
      const entries = audit.map((line) => JSON.parse(line));
      expect(entries.map(({ caller, method, route, ids, status }) => ({ caller, method, route, ids, status }))).toEqual([
        { caller: 'anonymous', method: 'POST', route: '/:engine/upload', ids: { engine: 'fileinfo' }, status: 401 },
        { caller: 'unauthenticated', method: 'POST', route: '/:engine/upload', ids: { engine: 'fileinfo' }, status: 401 },
        { caller: `key ${key.read.id} (read-key)`, method: 'DELETE', route: '(no route)', ids: {}, status: 404 },
        { caller: `key ${key.read.id} (read-key)`, method: 'POST', route: '/:engine/upload', ids: { engine: 'tiny' }, status: 403 },
      ]);
      expect(audit.join('\n')).not.toContain(madeUp);
      expect(audit.join('\n')).not.toContain(key.read.secret);
    });
  });

  describe('health and readiness', () => {
    it('answers /healthz while the process is up', async () => {
      const { send } = await gateway();
      const response = await send({ method: 'GET', url: '/healthz' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ status: 'ok' });
    });

    it('answers /readyz 200 when Temporal and Docker answer and engines are loaded, and says how many were skipped', async () => {
      const { send } = await gateway();
      const response = await send({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        status: 'ready',
        checks: {
          temporal: { ok: true, message: `Temporal at ${temporalAddress()} answers`, ms: expect.any(Number) },
          blobs: { ok: true, message: 'the blob store answers', ms: expect.any(Number) },
          docker: { ok: true, message: 'Docker answers', ms: expect.any(Number) },
          engines: { ok: true, message: '2 engine(s) loaded; 1 manifest(s) skipped, see GET /v1/engines', ms: 0 },
        },
      });
    });

    it('answers /readyz 503 naming Temporal when Temporal is unreachable', async () => {
      const address = `127.0.0.1:${await freePort()}`;
      // No retry interceptor: a retry timer still pending when the connection closes would throw later, outside any test.
      const connection = Connection.lazy({ address, interceptors: [] });
      connections.push(connection);
      const { send } = await gateway({ temporal: new DocketClient(new Client({ connection }), 'unreachable'), readyTimeoutMs: 1500 });
      const response = await send({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(503);
      const { status, checks } = response.json();
      expect(status).toBe('not ready');
      expect(checks.temporal.ok).toBe(false);
      expect(checks.temporal.message).toContain(`cannot reach Temporal at ${address}`);
      expect(checks.docker.ok).toBe(true);
      expect(checks.engines.ok).toBe(true);
    });

    it('answers /readyz 503 when Docker is unreachable or no engine is loaded', async () => {
      const empty = await EngineRegistry.load(mkdtempSync(join(tmpdir(), 'docket-no-engines-')));
      const { send } = await gateway({ runners: await dockerRunners(new Docker({ socketPath: '/nonexistent/docker.sock' })), registry: empty });
      const response = await send({ method: 'GET', url: '/readyz' });
      expect(response.statusCode).toBe(503);
      const { checks } = response.json();
      expect(checks.temporal.ok).toBe(true);
      expect(checks.docker).toMatchObject({ ok: false, message: expect.stringContaining('cannot reach Docker') });
      expect(checks.engines).toMatchObject({ ok: false, message: 'no engine is loaded (check DOCKET_ENGINES_DIR)' });
    });
  });

  describe('metrics', () => {
    it('counts requests by route pattern, method and status, and serves the engine metrics from the same registry', async () => {
      const { send, metrics } = await gateway();
      await send({ method: 'GET', url: '/healthz' });
      await send({ method: 'GET', url: '/result/abc', headers: bearer('read') });
      await send({ method: 'GET', url: `/random/${randomBytes(8).toString('hex')}` });
      metrics.engineJob('fileinfo', 'success', 1.5);
      metrics.engineJob('fileinfo', 'error');
      const response = await send({ method: 'GET', url: '/metrics', headers: bearer('read') });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain('text/plain');
      expect(response.body).toContain('docket_http_requests_total{route="/healthz",method="GET",status="200"} 1');
      expect(response.body).toContain('docket_http_requests_total{route="/result/:id",method="GET",status="404"} 1');
      expect(response.body).toContain('docket_http_requests_total{route="(no route)",method="GET",status="404"} 1');
      expect(response.body).toContain('docket_http_request_duration_seconds_bucket');
      expect(response.body).toContain('docket_engine_jobs_total{engine="fileinfo",outcome="success"} 1');
      expect(response.body).toContain('docket_engine_jobs_total{engine="fileinfo",outcome="error"} 1');
      expect(response.body).toContain('docket_engine_run_seconds_count{engine="fileinfo"} 1');
      expect(response.body).toContain('docket_engine_run_seconds_sum{engine="fileinfo"} 1.5');
    });
  });

  describe('GET /v1/engines', () => {
    it('lists each engine with the image it resolves to now, and the skipped manifests', async () => {
      const { send } = await gateway();
      const response = await send({ method: 'GET', url: '/v1/engines', headers: bearer('read') });
      expect(response.statusCode).toBe(200);
      const { engines, errors } = response.json();
      const fileinfoImage = await docker.getImage('docket/fileinfo:1.0').inspect();
      expect(engines).toEqual([
        {
          name: 'fileinfo', kind: 'analyzer', description: '', accepts: ['file'], protocol: 'cortex',
          image: 'docket/fileinfo:1.0', imageId: fileinfoImage.Id, imagePresent: true,
          concurrency: 2, timeout: 60_000, sizelimit: 50 * 1024 ** 2,
        },
        {
          name: 'secretive', kind: 'analyzer', description: 'holds secrets in its manifest', accepts: ['file'], protocol: 'cortex',
          image: 'docket/never-built:0', imageId: null, imagePresent: false,
          concurrency: 2, timeout: 60_000, sizelimit: 50 * 1024 ** 2,
        },
      ]);
      expect(errors).toEqual([expect.stringMatching(/broken\/engine\.yaml: kind: /)]);
    });

    it('never shows manifest config or env values', async () => {
      const { send } = await gateway();
      const response = await send({ method: 'GET', url: '/v1/engines', headers: bearer('admin') });
      expect(response.body).not.toContain(SECRET_CONFIG);
      expect(response.body).not.toContain(SECRET_ENV);
      expect(response.body).not.toMatch(/api_key|TOKEN|"config"|"env"/);
    });

    it('says when Docker could not be asked about an image, rather than calling it missing', async () => {
      const { send } = await gateway({ runners: await dockerRunners(new Docker({ socketPath: '/nonexistent/docker.sock' })) });
      const { engines } = (await send({ method: 'GET', url: '/v1/engines', headers: bearer('read') })).json();
      expect(engines[0]).toMatchObject({ imageId: null, imagePresent: null, imageError: expect.stringContaining('Docker did not answer') });
    });
  });

  describe('OpenAPI document and docs page', () => {
    const documented = [
      ['/{engine}/upload', 'post', 'analyze'],
      ['/result/{id}', 'get', 'read'],
      ['/link/{id}', 'get', 'read'],
      ['/v1/engines', 'get', 'read'],
      ['/metrics', 'get', 'read'],
      ['/healthz', 'get', undefined],
      ['/readyz', 'get', undefined],
    ] as const;

    it('is a valid OpenAPI 3 document', async () => {
      const { send } = await gateway();
      const dir = mkdtempSync(join(tmpdir(), 'docket-openapi-'));
      writeFileSync(join(dir, 'openapi.json'), (await send({ method: 'GET', url: '/openapi.json' })).body);
      const cli = join(ROOT, 'node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js');
      const validation = spawnSync(process.execPath, [cli, join(dir, 'openapi.json')], { encoding: 'utf8' });
      expect({ status: validation.status, output: validation.stdout + validation.stderr }).toEqual({ status: 0, output: expect.stringContaining('valid') });
    });

    it('documents every route with the role it needs, and documents no route that does not exist', async () => {
      const { send, app } = await gateway();
      const document = (await send({ method: 'GET', url: '/openapi.json' })).json();
      for (const [path, method, role] of documented) {
        const operation = document.paths[path]?.[method];
        expect({ path, method, documented: Boolean(operation) }).toEqual({ path, method, documented: true });
        expect(operation.responses['4XX'].content['application/json'].schema.properties.error).toBeDefined();
        if (role) {
          expect(operation.security).toEqual([{ bearer: [] }]);
          expect(operation.description).toContain(`Needs the \`${role}\` role.`);
        } else {
          expect(operation.security).toBeUndefined();
        }
      }
      for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
        for (const method of Object.keys(operations)) {
          expect({ path, method, exists: app.hasRoute({ method: method.toUpperCase() as 'GET', url: path.replace(/\{(\w+)\}/g, ':$1') }) })
            .toEqual({ path, method, exists: true });
        }
      }
      expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    });

    it('serves the docs page and its assets from the package, with nothing to load from elsewhere', async () => {
      const { send } = await gateway();
      const page = await send({ method: 'GET', url: '/docs' });
      expect(page.statusCode).toBe(200);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.headers['content-security-policy']).toContain("default-src 'self'");
      expect(page.body).not.toMatch(/(src|href)=["'](https?:)?\/\//);
      const init = await send({ method: 'GET', url: '/docs/init.js' });
      expect(init.body).toContain("url: '/openapi.json'");
      expect(init.body).toContain('validatorUrl: null');
      for (const asset of ['swagger-ui-bundle.js', 'swagger-ui.css']) {
        const response = await send({ method: 'GET', url: `/docs/${asset}` });
        expect({ asset, status: response.statusCode, size: response.body.length > 1000 }).toEqual({ asset, status: 200, size: true });
      }
      expect((await send({ method: 'GET', url: '/docs/package.json' })).statusCode).toBe(404);
      expect((await send({ method: 'GET', url: '/docs/..%2F..%2Fpackage.json' })).statusCode).toBe(404);
    });
  });

  describe('errors outside any route', () => {
    it('answers a URL that does not decode with 400 in the error shape', async () => {
      const { send } = await gateway();
      const response = await send({ method: 'GET', url: '/%ff/upload' });
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({ code: 'bad_request', message: expect.stringContaining('refused before routing') });
    });

    it('answers bytes that are not HTTP with 400 in the error shape', async () => {
      const { app } = await gateway();
      const { port } = app.server.address() as { port: number };
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.end('\u0000\u0001 not http at all\r\n\r\n'));
        let answer = '';
        socket.on('data', (chunk) => { answer += chunk; });
        socket.on('close', () => resolve(answer));
        socket.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(JSON.parse(raw.split('\r\n\r\n')[1])).toEqual({ error: { code: 'bad_request', message: 'the request is not valid HTTP' } });
    });
  });

  describe('fuzzing', () => {
    const segment = fc.oneof(
      fc.string({ maxLength: 40 }).map(encodeURIComponent),
      fc.constantFrom('', '..', '%2e%2e', '%00', '%ff', '%', '%zz', '.', '~', '$', "'", '*', '%2F', 'a'.repeat(250)),
    );
    const pathFrom = (templates: string[]) => fc.tuple(fc.constantFrom(...templates), segment).map(([template, value]) => template.replace('{}', value));
    const query = fc.option(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }), { nil: undefined })
      .map((entries) => (entries ? `?${new URLSearchParams(entries)}` : ''));
    const printable = fc.string({ maxLength: 60 }).map((text) => text.replace(/[^\x20-\x7e]/g, ''));
    const authorization = fc.option(fc.oneof(
      fc.constantFrom('admin', 'read').map((role) => `Bearer ${key[role as 'admin'].secret}`),
      printable.map((text) => `Bearer ${text}`),
      printable,
    ), { nil: undefined });
    const contentType = fc.option(fc.oneof(
      fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'multipart/form-data', 'application/x-www-form-urlencoded'),
      printable.map((boundary) => `multipart/form-data; boundary=${boundary}`),
      printable,
    ), { nil: undefined });
    const body = fc.option(fc.oneof(
      fc.json().map((json) => Buffer.from(json)),
      fc.string().map((text) => Buffer.from(text)),
      fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
      printable.map((boundary) => Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="upload"; filename="a"\r\n\r\nabc\r\n--${boundary}--\r\n`)),
    ), { nil: undefined });
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS');
    const extra = fc.dictionary(fc.constantFrom('accept', 'accept-encoding', 'x-forwarded-for', 'range', 'if-none-match', 'origin'), printable, { maxKeys: 3 });

    /** Random methods, paths from `templates`, query strings, keys, content types, bodies and headers. */
    async function fuzz(templates: string[], numRuns: number): Promise<void> {
      const { send } = await gateway({ anonymous: anonymousPolicy('analyze', '0.0.0.0') });
      await fc.assert(
        fc.asyncProperty(method, pathFrom(templates), query, authorization, contentType, body, extra, async (verb, url, search, auth, type, payload, headers) => {
          const sent = {
            method: verb,
            url: `${url}${search}`,
            headers: { ...headers, ...(auth === undefined ? {} : { authorization: auth }), ...(type === undefined ? {} : { 'content-type': type }) },
            body: verb === 'GET' || verb === 'HEAD' ? undefined : payload,
          };
          const response: Answer = await send(sent);
          if (response.statusCode >= 500) throw new Error(`${response.statusCode} for ${JSON.stringify(sent)}: ${response.body.slice(0, 300)}`);
          if (verb !== 'HEAD' && response.statusCode >= 400 && String(response.headers['content-type']).includes('json')) {
            expect(response.json().error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
          }
        }),
        { numRuns },
      );
    }

    it('answers every generated request to the Menagerie, operations, engine and docs routes without a 5xx, errors in the documented shape', async () => {
      await fuzz([
        '/', '/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/docs/init.js', '/docs/swagger-ui.css',
        '/v1/engines', '/fileinfo/upload', '/secretive/upload', '/result/{}', '/link/{}', '/{}/upload', '/v1/{}', '/docs/{}', '/{}',
      ], 400);
    });

    it('answers every generated request to the investigation routes without a 5xx, errors in the documented shape', async () => {
      await fuzz(['/v1/investigations', '/v1/investigations/{}', '/v1/investigations/{}/approve', '/v1/investigations/{}/reject', '/v1/investigations/{}/cancel'], 300);
    });
  });
});
