import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../core/config';
import { KeyStore } from '../../gateway/keys';
import { allowedHosts } from '../../gateway/site-guard';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * What a web page in the operator's browser can make the gateway do: DNS rebinding (a page under the
 * attacker's name, pointed at 127.0.0.1) and cross-site "simple" POSTs, on a fresh install whose
 * callers without a key may analyze. Real gateways over real sockets; `node:http`, because fetch
 * does not let a test choose the Host header.
 */
interface Sent {
  method?: string;
  path: string;
  /** The Host header; the gateway's own `127.0.0.1:<port>` unless given. */
  host?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

interface Answer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  json(): any;
}

function send(system: TestSystem, sent: Sent): Promise<Answer> {
  const base = new URL(system.baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({
      host: base.hostname,
      port: base.port,
      method: sent.method ?? 'GET',
      path: sent.path,
      agent: false,
      headers: {
        host: sent.host ?? base.host,
        ...(sent.body === undefined ? {} : { 'content-length': String(sent.body.length) }),
        ...sent.headers,
      },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, json: () => JSON.parse(body) });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(sent.body);
  });
}

/** A multipart body as a browser's form would send it, with a file no other test uploads. */
async function multipart(fields: Record<string, string>): Promise<{ body: Buffer; contentType: string; sha256: string }> {
  const content = `site-guard sample ${randomBytes(12).toString('hex')}\n`;
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append('upload', new Blob([content]), 'sample.txt');
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    contentType: request.headers.get('content-type')!,
    sha256: createHash('sha256').update(content).digest('hex'),
  };
}

const port = (system: TestSystem) => new URL(system.baseUrl).port;
const CROSS_SITE = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };

// The two ways to start an investigation from a form: Menagerie's upload and the v1 API.
const POSTS: Array<{ path: string; fields: Record<string, string>; idOf: (answer: Answer) => string }> = [
  { path: '/fileinfo/upload', fields: {}, idOf: (answer: Answer) => answer.json().jobid as string },
  { path: '/v1/investigations', fields: { text: 'seen at 203.0.113.5' }, idOf: (answer: Answer) => answer.json().id as string },
];

describe('site guard', () => {
  let fresh: TestSystem;
  let named: TestSystem;
  let anyName: TestSystem;
  let keyed: TestSystem;
  let key: string;
  const audit: string[] = [];
  // Every investigation a test was told had started, per system: anything else on its queue was not asked for.
  const answered = new Map<TestSystem, Set<string>>();

  beforeAll(async () => {
    [fresh, named, anyName, keyed] = await Promise.all([
      startTestSystem({ workers: false, audit: (line) => audit.push(line) }),
      startTestSystem({ workers: false, env: { DOCKET_ALLOWED_HOSTS: 'docket.example.test, Other.Example.Test' } }),
      startTestSystem({ workers: false, env: { DOCKET_ALLOWED_HOSTS: '*' } }),
      startTestSystem({ workers: false, env: { DOCKET_ANONYMOUS: 'none' } }),
    ]);
    key = (await new KeyStore(join(keyed.dataDir, 'keys.json')).create('ci', 'analyze')).key;
  });
  afterAll(async () => {
    for (const [system, ids] of answered) {
      for (const id of ids) await system.client.workflow.getHandle(id).terminate('the site guard test is over').catch(() => undefined);
    }
    await Promise.all([fresh, named, anyName, keyed].filter(Boolean).map((system) => system.close()));
  });

  /** Sends an investigation as a form would and returns the id it was answered, if it was started. */
  async function post(system: TestSystem, route: (typeof POSTS)[number], sent: Omit<Sent, 'path' | 'body'> = {}) {
    const form = await multipart(route.fields);
    const answer = await send(system, {
      ...sent, method: 'POST', path: route.path, body: form.body, headers: { 'content-type': form.contentType, ...sent.headers },
    });
    const accepted = answer.statusCode === 200 || answer.statusCode === 202;
    if (accepted) {
      if (!answered.has(system)) answered.set(system, new Set());
      answered.get(system)!.add(route.idOf(answer));
    }
    return { answer, sha256: form.sha256, id: accepted ? route.idOf(answer) : undefined };
  }

  /** Waits until Temporal lists `marker` on the system's queue, then returns every workflow listed there. */
  async function startedOn(system: TestSystem, marker: string): Promise<string[]> {
    const queue = `${system.config.DOCKET_QUEUE_PREFIX}${system.config.DOCKET_TASK_QUEUE}`;
    const list = async () => {
      const ids: string[] = [];
      for await (const workflow of system.client.workflow.list({ query: `TaskQueue = '${queue}'` })) ids.push(workflow.workflowId);
      return ids;
    };
    return poll(list, (ids) => ids.includes(marker), `investigation ${marker} to be listed`);
  }

  describe('Host names (DNS rebinding)', () => {
    it.each(['GET', 'HEAD'])('refuses %s /v1/engines under a name it was not told about with 421, naming the host and DOCKET_ALLOWED_HOSTS', async (method) => {
      const answer = await send(fresh, { method, path: '/v1/engines', host: `rebind.attacker.example:${port(fresh)}` });
      expect(answer.statusCode).toBe(421);
      if (method === 'HEAD') return;
      expect(answer.json().error).toEqual({
        code: 'misdirected_request',
        message: expect.stringMatching(/does not answer to the host name "rebind\.attacker\.example".*add it to DOCKET_ALLOWED_HOSTS/),
        details: { host: 'rebind.attacker.example', setting: 'DOCKET_ALLOWED_HOSTS' },
      });
    });

    it.each(POSTS)('refuses POST $path from a rebound page (same-origin to the browser) with 421 and stores nothing', async (route) => {
      const host = `rebind.attacker.example:${port(fresh)}`;
      const { answer, sha256 } = await post(fresh, route, {
        host, headers: { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' },
      });
      expect(answer.statusCode).toBe(421);
      expect(answer.json().error.code).toBe('misdirected_request');
      expect(await fresh.blobs.has(sha256)).toBe(false);
    });

    it.each(['localhost', '127.0.0.1', '[::1]', 'LocalHost'])('serves Host %s with the port and without', async (name) => {
      for (const host of [`${name}:${port(fresh)}`, name]) {
        const answer = await send(fresh, { path: '/v1/engines', host });
        expect({ host, status: answer.statusCode }).toEqual({ host, status: 200 });
      }
    });

    it.each(['192.0.2.10:8100', '[2001:db8::1]:8100', '10.1.2.3'])('serves the IP address %s it was not told about: only a name can be rebound', async (host) => {
      expect((await send(fresh, { path: '/v1/engines', host })).statusCode).toBe(200);
    });

    it('serves the names DOCKET_ALLOWED_HOSTS adds, whatever their case, port or trailing dot, and localhost still', async () => {
      for (const host of ['docket.example.test', `DOCKET.example.test:${port(named)}`, 'other.example.test.:443', `localhost:${port(named)}`]) {
        const answer = await send(named, { path: '/openapi.json', host });
        expect({ host, status: answer.statusCode }).toEqual({ host, status: 200 });
      }
      expect((await send(named, { path: '/openapi.json', host: 'rebind.attacker.example' })).statusCode).toBe(421);
      expect((await send(named, { path: '/openapi.json', host: 'sub.docket.example.test' })).statusCode).toBe(421);
    });

    it('serves every name when DOCKET_ALLOWED_HOSTS is *', async () => {
      expect((await send(anyName, { path: '/openapi.json', host: 'rebind.attacker.example' })).statusCode).toBe(200);
    });

    it('answers /healthz and /readyz under any name, for probes that use a service name', async () => {
      const healthz = await send(fresh, { path: '/healthz', host: 'docket-gateway.internal:8100' });
      expect(healthz.statusCode).toBe(200);
      const readyz = await send(fresh, { path: '/readyz', host: 'docket-gateway.internal:8100' });
      expect(readyz.json()).toHaveProperty('checks');
    });

    it('serves an HTTP/1.0 request that has no Host header: browsers always send one', async () => {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port(fresh)), '127.0.0.1', () => socket.write('GET /openapi.json HTTP/1.0\r\n\r\n'));
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => resolve(Buffer.concat(chunks).toString()));
        socket.on('error', reject);
      });
      expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    });

    it('answers to localhost, and to DOCKET_HOST when it is a name rather than an address', () => {
      expect(allowedHosts('', '127.0.0.1')).toEqual(['localhost']);
      expect(allowedHosts('', '0.0.0.0')).toEqual(['localhost']);
      expect(allowedHosts('', '::')).toEqual(['localhost']);
      expect(allowedHosts('a.example, b.example', 'docket.lan')).toEqual(['localhost', 'a.example', 'b.example', 'docket.lan']);
    });

    it.each(['https://docket.example.test', 'docket.example.test:8100', '.example.test'])('refuses DOCKET_ALLOWED_HOSTS entry %s at start, saying how to write one', (entry) => {
      expect(() => loadConfig({ DOCKET_ALLOWED_HOSTS: `localhost,${entry}` }))
        .toThrow(new ConfigError(`invalid configuration: DOCKET_ALLOWED_HOSTS: ${JSON.stringify(entry)} is not a host name: list names without scheme or port (docket.example.org), or * for any`));
    });
  });

  describe('cross-site requests', () => {
    it.each(POSTS)('refuses a cross-site multipart POST $path without a key with 403, audits it, and stores and starts nothing', async (route) => {
      const pattern = route.path === '/fileinfo/upload' ? '/:engine/upload' : route.path;
      const audited = audit.length;
      const { answer, sha256 } = await post(fresh, route, { headers: CROSS_SITE });
      expect(answer.statusCode).toBe(403);
      expect(answer.json().error).toEqual({
        code: 'cross_site',
        message: `POST ${pattern} was sent by a page on another site (Sec-Fetch-Site: cross-site); browsers may change things only from Docket's own pages (the console). API clients send their key as "Authorization: Bearer <key>"`,
        details: { header: 'Sec-Fetch-Site', value: 'cross-site' },
      });
      expect(await fresh.blobs.has(sha256)).toBe(false);
      expect(readdirSync(join(fresh.dataDir, 'blobs', 'tmp'))).toEqual([]);
      // The audit line is written once the answer has gone, so it may trail the answer a little.
      const lines = await poll(async () => audit.slice(audited), (written) => written.length > 0, 'the audit line', 10_000);
      expect(JSON.parse(lines[0])).toMatchObject({ caller: 'unauthenticated', method: 'POST', route: pattern, status: 403 });

      // The same form from the console's own page is taken; once Temporal lists it, nothing else is there.
      const { id } = await post(fresh, route, { headers: { origin: fresh.baseUrl, 'sec-fetch-site': 'same-origin' } });
      expect(id).toBeDefined();
      const listed = await startedOn(fresh, id!);
      expect(listed.filter((listedId) => !answered.get(fresh)!.has(listedId))).toEqual([]);
    });

    it('refuses a POST from another port on localhost (Sec-Fetch-Site: same-site)', async () => {
      const { answer } = await post(fresh, POSTS[0], { headers: { origin: 'http://localhost:3000', 'sec-fetch-site': 'same-site' } });
      expect(answer.statusCode).toBe(403);
      expect(answer.json().error.details).toEqual({ header: 'Sec-Fetch-Site', value: 'same-site' });
    });

    it.each(['https://evil.example', 'http://localhost:3000', 'null'])('refuses a POST with Origin %s from a browser that sends no Sec-Fetch-Site', async (origin) => {
      const { answer } = await post(fresh, POSTS[0], { host: `localhost:${port(fresh)}`, headers: { origin } });
      expect(answer.statusCode).toBe(403);
      expect(answer.json().error.details).toEqual({ header: 'Origin', value: origin });
    });

    it('takes a POST whose Origin is the Host it was sent to, the scheme deciding only the default port', async () => {
      const cases = [
        { host: `localhost:${port(fresh)}`, origin: `http://localhost:${port(fresh)}` },
        { host: `127.0.0.1:${port(fresh)}`, origin: `http://127.0.0.1:${port(fresh)}` },
        // Behind a proxy that ends TLS and passes Host on.
        { host: 'docket.example.test', origin: 'https://docket.example.test' },
      ];
      for (const { host, origin } of cases) {
        const system = host.startsWith('docket.') ? named : fresh;
        const { answer } = await post(system, POSTS[0], { host, headers: { origin } });
        expect({ host, origin, status: answer.statusCode }).toEqual({ host, origin, status: 200 });
      }
    });

    it("believes the browser's Sec-Fetch-Site: same-origin over an Origin that differs from Host (a proxy that rewrites Host)", async () => {
      const { answer } = await post(fresh, POSTS[0], { headers: { origin: 'https://docket.example.org', 'sec-fetch-site': 'same-origin' } });
      expect(answer.statusCode).toBe(200);
    });

    it("takes a POST with neither Origin nor Sec-Fetch-Site: curl, scripts and Slack's servers send none", async () => {
      const { answer } = await post(fresh, POSTS[0]);
      expect(answer.statusCode).toBe(200);
    });

    it.each(POSTS)('takes the same cross-site multipart POST $path when it carries "Authorization: Bearer <key>"', async (route) => {
      const { answer, id } = await post(keyed, route, { headers: { ...CROSS_SITE, authorization: `Bearer ${key}` } });
      expect(answer.statusCode).toBe(route.path === '/v1/investigations' ? 202 : 200);
      expect(id).toBeDefined();
    });

    it('answers 401 to a cross-site POST whose bearer key is not valid', async () => {
      const { answer } = await post(keyed, POSTS[0], { headers: { ...CROSS_SITE, authorization: `Bearer dk_${randomBytes(32).toString('base64url')}` } });
      expect(answer.statusCode).toBe(401);
    });

    it('refuses a cross-site POST carrying Basic credentials, which browsers attach by themselves', async () => {
      const { answer } = await post(fresh, POSTS[0], { headers: { ...CROSS_SITE, authorization: `Basic ${Buffer.from('operator:secret').toString('base64')}` } });
      expect(answer.statusCode).toBe(403);
      expect(answer.json().error.code).toBe('cross_site');
    });

    it('answers a cross-site GET without CORS headers, so the page that sent it cannot read the answer', async () => {
      const answer = await send(fresh, { path: '/v1/engines', headers: CROSS_SITE });
      expect(answer.statusCode).toBe(200);
      expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});
