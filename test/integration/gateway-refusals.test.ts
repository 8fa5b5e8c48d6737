import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DocketClient } from '../../contract/client';
import type { FastifyInstance } from 'fastify';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { EngineRegistry } from '../../infra/engine-registry';
import { anonymousPolicy } from '../../gateway/auth';
import { KeyStore } from '../../gateway/keys';
import { buildGateway, type GatewayDeps } from '../../gateway/server';
import { dockerRunners } from '../helpers/engines';
import { enginesFolder, fileinfoManifest } from '../helpers/fixtures';
import { listen, type Send } from '../helpers/http';
import { poll, temporalAddress } from '../helpers/system';
import { WorkflowType } from '../../contract/messages';

/** Requests the gateway must refuse with a 4xx that says what to do: bad page tokens, guessed keys. */
describe('gateway refusals', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'docket-refusals-'));
  const apps: FastifyInstance[] = [];
  let connection: Connection;
  let deps: Omit<GatewayDeps, 'rateLimit'>;
  let keys: KeyStore;
  let readKey: string;
  let revokedKey: string;

  beforeAll(async () => {
    connection = await Connection.connect({ address: temporalAddress() });
    keys = new KeyStore(join(dataDir, 'keys.json'));
    readKey = (await keys.create('reader', 'read')).key;
    const revoked = await keys.create('former', 'read');
    await keys.revoke(revoked.info.id);
    revokedKey = revoked.key;
    const blobs = await new FsBlobStore(join(dataDir, 'blobs')).init();
    deps = {
      temporal: new DocketClient(new Client({ connection }), `t${randomBytes(4).toString('hex')}-docket`, blobs),
      blobs,
      registry: await EngineRegistry.load(enginesFolder([fileinfoManifest])),
      runners: await dockerRunners(),
      keys,
      anonymous: anonymousPolicy('read', '127.0.0.1'),
      audit: () => undefined,
    };
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await connection?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function gateway(rateLimit: number): Promise<{ send: Send; port: number }> {
    const app = await buildGateway({ ...deps, rateLimit });
    apps.push(app);
    const send = await listen(app);
    return { send, port: (app.server.address() as { port: number }).port };
  }

  const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

  describe('listing investigations', () => {
    it.each([
      ['AAAA', 'AAAA'],
      ['a bare visibility token, without Docket\'s check', Buffer.from('{"LastCloseTime":"yesterday"}').toString('base64url')],
      ['a made-up check', `${Buffer.from('{"LastCloseTime":"yesterday"}').toString('base64url')}.AAAAAAAAAAAAAAAA`],
      ['characters outside base64url', 'not a token!'],
      ['__proto__', '__proto__'],
    ])('answers a page token it did not issue (%s) with 400 saying to pass nextPageToken', async (_label, token) => {
      const { send } = await gateway(0);
      const answer = await send({ method: 'GET', url: `/v1/investigations?pageToken=${encodeURIComponent(token)}`, headers: bearer(readKey) });
      expect(answer.statusCode).toBe(400);
      expect(answer.json().error.code).toBe('bad_request');
      expect(answer.json().error.message).toMatch(/pageToken is not valid.*nextPageToken/);
    });

    it('pages with the nextPageToken it gave, and refuses it for a list with other filters', async () => {
      const { send } = await gateway(0);
      // Two investigations nobody works on, so there are two pages of one whatever else the server holds.
      const handles = await Promise.all([1, 2].map(() => deps.temporal.client.workflow.start(WorkflowType.investigation, {
        taskQueue: deps.temporal.taskQueue, workflowId: `refusals-${randomBytes(6).toString('hex')}`, args: [{}],
      })));
      try {
        const first = await poll(
          () => send({ method: 'GET', url: '/v1/investigations?pageSize=1', headers: bearer(readKey) }),
          (answer) => answer.statusCode !== 200 || Boolean(answer.json().nextPageToken),
          'a first page with a nextPageToken',
          30_000,
        );
        expect(first.statusCode).toBe(200);
        const token = first.json().nextPageToken as string;
        const second = await send({ method: 'GET', url: `/v1/investigations?pageSize=1&pageToken=${encodeURIComponent(token)}`, headers: bearer(readKey) });
        expect(second.statusCode).toBe(200);
        expect(second.json().investigations).toHaveLength(1);
        expect(second.json().investigations[0].id).not.toBe(first.json().investigations[0].id);
        const otherList = await send({ method: 'GET', url: `/v1/investigations?pageSize=1&status=running&pageToken=${encodeURIComponent(token)}`, headers: bearer(readKey) });
        expect(otherList.statusCode).toBe(400);
        expect(otherList.json().error.message).toMatch(/same filters/);
      } finally {
        await Promise.all(handles.map((handle) => handle.terminate('test over').catch(() => undefined)));
      }
    });
  });

  describe('keys that are not valid', () => {
    const LIMIT = 3;

    it('answers 429 with Retry-After once an address has sent DOCKET_RATE_LIMIT refused keys in a minute, even for a valid key', async () => {
      const { send } = await gateway(LIMIT);
      for (let attempt = 0; attempt < LIMIT; attempt += 1) {
        const guess = attempt === 0 ? revokedKey : `dk_${randomBytes(32).toString('base64url')}`;
        expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer(guess) })).statusCode).toBe(401);
      }
      const throttled = await send({ method: 'GET', url: '/v1/engines', headers: bearer(`dk_${randomBytes(32).toString('base64url')}`) });
      expect(throttled.statusCode).toBe(429);
      expect(throttled.json().error.code).toBe('rate_limited');
      expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(throttled.headers['retry-after'])).toBeLessThanOrEqual(60);
      // A right guess must look like a wrong one while throttled, or the throttle would confirm it.
      expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer(readKey) })).statusCode).toBe(429);
      // Public routes and callers without a key are not part of a guess.
      expect((await send({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      expect((await send({ method: 'GET', url: '/v1/engines' })).statusCode).toBe(200);
    });

    it('throttles refused keys on public and unknown routes too, which the per-route limit does not cover', async () => {
      const { send } = await gateway(LIMIT);
      const urls = ['/healthz', '/openapi.json', '/no/such/route'];
      for (const url of urls) expect((await send({ method: 'GET', url, headers: bearer('dk_guess') })).statusCode).toBe(401);
      expect((await send({ method: 'GET', url: '/healthz', headers: bearer('dk_guess') })).statusCode).toBe(429);
      expect((await send({ method: 'GET', url: '/healthz', headers: { authorization: 'Basic Z3Vlc3M6Z3Vlc3M=' } })).statusCode).toBe(429);
    });

    it('counts refused keys per address: another address is still served', async () => {
      const { send, port } = await gateway(LIMIT);
      for (let attempt = 0; attempt <= LIMIT; attempt += 1) await send({ method: 'GET', url: '/v1/engines', headers: bearer('dk_guess') });
      expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer(readKey) })).statusCode).toBe(429);
      expect(await statusFrom('127.0.0.2', port, '/v1/engines', bearer(readKey))).toBe(200);
    });

    it('does not throttle refused keys when DOCKET_RATE_LIMIT is 0', async () => {
      const { send } = await gateway(0);
      for (let attempt = 0; attempt < 10; attempt += 1) {
        expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer('dk_guess') })).statusCode).toBe(401);
      }
      expect((await send({ method: 'GET', url: '/v1/engines', headers: bearer(readKey) })).statusCode).toBe(200);
    });
  });
});

/** One GET to the gateway on 127.0.0.1 sent from another loopback address. */
function statusFrom(localAddress: string, port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, headers, localAddress, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}
