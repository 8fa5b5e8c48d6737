import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { type AnonymousPolicy, anonymousPolicy, auth, isLoopback } from '../../gateway/auth';
import { errorHandling } from '../../gateway/errors';
import { KeyStore, KeyStoreError, type Role, roleAtLeast } from '../../gateway/keys';
import { listen, type Send } from '../helpers/http';

const keyFile = () => join(mkdtempSync(join(tmpdir(), 'docket-keys-')), 'keys.json');

describe('key store', () => {
  it('issues prefixed random keys and stores only their hashes, readable by the owner alone', async () => {
    const store = new KeyStore(keyFile());
    const { key, info } = await store.create('ci', 'analyze');
    expect(key).toMatch(/^dk_[A-Za-z0-9_-]{43}$/);
    expect(info).toEqual({ id: expect.stringMatching(/^[0-9a-f]{8}$/), name: 'ci', role: 'analyze', created: expect.any(String) });
    const file = readFileSync(store.file, 'utf8');
    expect(file).not.toContain(key);
    expect(file).not.toContain(key.slice(3));
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
    expect(await store.list()).toEqual([info]);
  });

  it('authenticates the key it issued and nothing else', async () => {
    const store = new KeyStore(keyFile());
    const { key, info } = await store.create('ci', 'read');
    expect(await store.authenticate(key)).toEqual(info);
    expect(await store.authenticate(`${key}x`)).toBeUndefined();
    expect(await store.authenticate('dk_')).toBeUndefined();
    expect(await store.authenticate('')).toBeUndefined();
  });

  it('refuses a revoked key, also in another process that read the file before the revocation', async () => {
    const file = keyFile();
    const gateway = new KeyStore(file);
    const cli = new KeyStore(file);
    const { key, info } = await cli.create('laptop', 'admin');
    expect(await gateway.authenticate(key)).toBeDefined();
    await cli.revoke(info.id);
    expect(await gateway.authenticate(key)).toBeUndefined();
    expect(await gateway.hasActiveKeys()).toBe(false);
    expect((await gateway.list())[0].revoked).toEqual(expect.any(String));
  });

  it('refuses a second active key with the same name, an unknown id and a bad name', async () => {
    const store = new KeyStore(keyFile());
    await store.create('ci', 'read');
    await expect(store.create('ci', 'admin')).rejects.toThrow('already an active key named ci');
    await expect(store.revoke('00000000')).rejects.toThrow('no key with id 00000000');
    await expect(store.create('a b', 'read')).rejects.toThrow(KeyStoreError);
  });

  it('says which file is broken when the key file is not JSON', async () => {
    const file = keyFile();
    writeFileSync(file, '{not json');
    await expect(new KeyStore(file).authenticate('dk_x')).rejects.toThrow(`${file} is not valid JSON`);
  });

  it('orders the roles read < analyze < respond < admin', () => {
    expect(roleAtLeast('admin', 'respond')).toBe(true);
    expect(roleAtLeast('analyze', 'analyze')).toBe(true);
    expect(roleAtLeast('analyze', 'respond')).toBe(false);
    expect(roleAtLeast('read', 'analyze')).toBe(false);
  });
});

describe('anonymous policy', () => {
  it.each(['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.1.1', '::ffff:127.0.0.1'])('treats %s as loopback', (host) => {
    expect(isLoopback(host)).toBe(true);
  });

  it.each(['0.0.0.0', '::', '10.0.0.1', 'docket.example.org', '128.0.0.1'])('does not treat %s as loopback', (host) => {
    expect(isLoopback(host)).toBe(false);
  });

  it('lets callers without a key analyze on loopback until the first key exists, by default', () => {
    expect(anonymousPolicy('auto', '127.0.0.1')).toEqual({ role: 'analyze', untilFirstKey: true });
    expect(anonymousPolicy('auto', '0.0.0.0')).toEqual({ untilFirstKey: false });
  });

  it('does what an explicit setting says, on any address', () => {
    expect(anonymousPolicy('none', '127.0.0.1')).toEqual({ untilFirstKey: false });
    expect(anonymousPolicy('read', '0.0.0.0')).toEqual({ role: 'read', untilFirstKey: false });
  });
});

describe('auth plugin', () => {
  const servers: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function app(anonymous: AnonymousPolicy, store = new KeyStore(keyFile())): Promise<Send> {
    const server = Fastify();
    servers.push(server);
    await server.register(errorHandling);
    await server.register(auth, { keys: store, anonymous });
    server.get('/open', async (request) => ({ caller: request.caller }));
    for (const role of ['read', 'analyze', 'respond', 'admin'] as Role[]) {
      server.post(`/needs/${role}`, { config: { role } }, async (request) => ({ caller: request.caller }));
    }
    return listen(server);
  }
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  it('answers 401 with the role needed and how to get a key when no key is sent', async () => {
    const server = await app(anonymousPolicy('none', '127.0.0.1'));
    const response = await server({ method: 'POST', url: '/needs/analyze' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toContain('Bearer');
    expect(response.json()).toEqual({
      error: {
        code: 'unauthorized',
        message: 'POST /needs/analyze needs a key with the analyze role (this gateway takes no calls without a key): send "Authorization: Bearer <key>"; an admin creates one with: npm run keys -- create --name <name> --role analyze',
        details: { needed: 'analyze' },
      },
    });
  });

  it('answers 401 to a key it never issued, a revoked key and a header that is not Bearer', async () => {
    const store = new KeyStore(keyFile());
    const { key, info } = await store.create('old', 'admin');
    await store.revoke(info.id);
    const server = await app(anonymousPolicy('read', '127.0.0.1'), store);
    for (const headers of [bearer('dk_made-up'), bearer(key), { authorization: `Basic ${key}` }, { authorization: key }]) {
      const response = await server({ method: 'GET', url: '/open', headers });
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toBe('unauthorized');
      expect(response.body).not.toContain(key);
    }
  });

  it('answers 403 naming the key, its role and the role needed when the role is too low', async () => {
    const store = new KeyStore(keyFile());
    const { key, info } = await store.create('dashboard', 'read');
    const server = await app(anonymousPolicy('none', '127.0.0.1'), store);
    const response = await server({ method: 'POST', url: '/needs/respond', headers: bearer(key) });
    expect(response.statusCode).toBe(403);
    expect(response.json().error).toMatchObject({ code: 'forbidden', details: { needed: 'respond', role: 'read' } });
    expect(response.json().error.message).toBe(
      `key ${info.id} (dashboard) has the read role; POST /needs/respond needs respond: ask for a key with that role (an admin creates one with: npm run keys -- create --name <name> --role respond)`,
    );
  });

  it('lets a key do what its role and every lower role allow', async () => {
    const store = new KeyStore(keyFile());
    const { key, info } = await store.create('ops', 'respond');
    const server = await app(anonymousPolicy('none', '127.0.0.1'), store);
    for (const role of ['read', 'analyze', 'respond']) {
      const response = await server({ method: 'POST', url: `/needs/${role}`, headers: bearer(key) });
      expect(response.statusCode).toBe(200);
      expect(response.json().caller).toEqual({ kind: 'key', key: info, role: 'respond' });
    }
    expect((await server({ method: 'POST', url: '/needs/admin', headers: bearer(key) })).statusCode).toBe(403);
  });

  it('serves public routes without a key even when anonymous access is off', async () => {
    const server = await app(anonymousPolicy('none', '0.0.0.0'));
    const response = await server({ method: 'GET', url: '/open' });
    expect(response.statusCode).toBe(200);
    expect(response.json().caller).toEqual({ kind: 'anonymous' });
  });

  it('lets anonymous callers up to the configured role and asks the rest for a key', async () => {
    const server = await app(anonymousPolicy('read', '0.0.0.0'));
    expect((await server({ method: 'POST', url: '/needs/read' })).statusCode).toBe(200);
    const response = await server({ method: 'POST', url: '/needs/analyze' });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.message).toContain('callers without a key may only read');
  });

  it('ends loopback anonymous access (auto) once the first key is created, without a restart', async () => {
    const store = new KeyStore(keyFile());
    const server = await app(anonymousPolicy('auto', '127.0.0.1'), store);
    expect((await server({ method: 'POST', url: '/needs/analyze' })).statusCode).toBe(200);
    expect((await server({ method: 'POST', url: '/needs/respond' })).statusCode).toBe(401);
    const { key } = await new KeyStore(store.file).create('first', 'analyze');
    expect((await server({ method: 'POST', url: '/needs/analyze' })).statusCode).toBe(401);
    expect((await server({ method: 'POST', url: '/needs/analyze', headers: bearer(key) })).statusCode).toBe(200);
  });

  it('refuses service with 503, not access, when the key file is broken', async () => {
    const file = keyFile();
    writeFileSync(file, '[]');
    const server = await app(anonymousPolicy('auto', '127.0.0.1'), new KeyStore(file));
    for (const headers of [{}, bearer('dk_anything')]) {
      const response = await server({ method: 'POST', url: '/needs/read', headers });
      expect(response.statusCode).toBe(503);
      expect(response.json().error.code).toBe('unavailable');
      expect(response.body).not.toContain(file);
    }
  });
});
