import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './errors';
import { type KeyInfo, type KeyStore, type Role, roleAtLeast } from './keys';

/**
 * Who is calling. A route declares the least role it needs with its config, `{ config: { role:
 * 'analyze' } }`; a route without one is public (health, readiness, the OpenAPI document).
 */
export type Caller =
  | { kind: 'key'; key: KeyInfo; role: Role }
  | { kind: 'anonymous'; role?: Role };

declare module 'fastify' {
  interface FastifyContextConfig {
    role?: Role;
  }
  interface FastifyRequest {
    /** Set by the auth plugin before anything else runs; `undefined` only when the key was refused. */
    caller?: Caller;
  }
}

/** `DOCKET_ANONYMOUS`: what a caller without a key may do. */
export type AnonymousSetting = 'auto' | 'none' | 'read' | 'analyze';

export interface AnonymousPolicy {
  role?: Role;
  /** Anonymous access ends once the first key exists (the `auto` setting). */
  untilFirstKey: boolean;
}

/**
 * `auto` keeps the quick start (`curl -F upload=@file http://localhost:8100/fileinfo/upload`) working
 * without a key, but only where it is safe enough: a gateway bound to loopback, on an installation
 * where nobody has created a key yet. Creating the first key, or binding to another address, turns
 * anonymous access off unless it is asked for explicitly.
 */
export function anonymousPolicy(setting: AnonymousSetting, host: string): AnonymousPolicy {
  if (setting === 'none') return { untilFirstKey: false };
  if (setting === 'auto') return isLoopback(host) ? { role: 'analyze', untilFirstKey: true } : { untilFirstKey: false };
  return { role: setting, untilFirstKey: false };
}

export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^(::ffff:)?127(\.\d{1,3}){3}$/.test(bare);
}

export function describeCaller(caller: Caller | undefined): string {
  if (!caller) return 'unauthenticated';
  if (caller.kind === 'anonymous') return 'anonymous';
  return `key ${caller.key.id} (${caller.key.name})`;
}

export interface AuthOptions {
  keys: KeyStore;
  anonymous: AnonymousPolicy;
  /**
   * Refused keys an address may send a minute before every request of its that carries a key is
   * answered 429 until the minute is over; 0 or absent turns the throttle off.
   */
  refusedKeysPerMinute?: number;
}

const REFUSAL_WINDOW_MS = 60_000;
/** Addresses remembered at once; past it the oldest is forgotten, so a spray of addresses cannot grow memory. */
const REFUSAL_ADDRESSES = 10_000;

/**
 * Refused keys counted per address in fixed one-minute windows. The route rate limit cannot do this:
 * it keys on the caller, and a refused key has none, so without this anyone could guess keys at full speed.
 */
export class RefusedKeys {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  constructor(readonly max: number, private readonly now: () => number = Date.now) {}

  /** Whole seconds until `address` may send keys again; 0 when it may now. */
  blockedFor(address: string): number {
    const window = this.current(address);
    if (!window || window.count < this.max) return 0;
    return Math.max(1, Math.ceil((window.endsAt - this.now()) / 1000));
  }

  record(address: string): void {
    let window = this.current(address);
    if (!window) {
      if (this.windows.size >= REFUSAL_ADDRESSES) this.windows.delete(this.windows.keys().next().value!);
      window = { count: 0, endsAt: this.now() + REFUSAL_WINDOW_MS };
      this.windows.set(address, window);
    }
    window.count += 1;
  }

  private current(address: string): { count: number; endsAt: number } | undefined {
    const window = this.windows.get(address);
    if (window && window.endsAt <= this.now()) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Identifies the caller from `Authorization: Bearer <key>` and enforces each route's least role. */
export const auth = fp(async (app: FastifyInstance, options: AuthOptions) => {
  app.decorateRequest('caller', undefined);
  const refused = options.refusedKeysPerMinute ? new RefusedKeys(options.refusedKeysPerMinute) : undefined;

  app.addHook('onRequest', async (request, reply) => {
    request.caller = await identify(request, reply, options, refused);
    const needed = request.routeOptions.config.role;
    if (!needed || (request.caller.role && roleAtLeast(request.caller.role, needed))) return;
    const route = `${request.method} ${request.routeOptions.url}`;
    const howToGet = `an admin creates one with: npm run keys -- create --name <name> --role ${needed}`;
    if (request.caller.kind === 'anonymous') {
      reply.header('www-authenticate', 'Bearer realm="docket"');
      const anonymous = request.caller.role ? `callers without a key may only ${request.caller.role}` : 'this gateway takes no calls without a key';
      throw new ApiError(401, 'unauthorized', `${route} needs a key with the ${needed} role (${anonymous}): send "Authorization: Bearer <key>"; ${howToGet}`, { needed });
    }
    throw new ApiError(
      403, 'forbidden',
      `${describeCaller(request.caller)} has the ${request.caller.role} role; ${route} needs ${needed}: ask for a key with that role (${howToGet})`,
      { needed, role: request.caller.role },
    );
  });
});

async function identify(request: FastifyRequest, reply: FastifyReply, options: AuthOptions, refused?: RefusedKeys): Promise<Caller> {
  const header = request.headers.authorization;
  if (header === undefined) return { kind: 'anonymous', role: await anonymousRole(request, options) };
  // Checked before the key, even a good one: a throttled guesser must not learn which guess was right.
  const wait = refused?.blockedFor(request.ip) ?? 0;
  if (wait > 0) {
    reply.header('retry-after', String(wait));
    throw new ApiError(
      429, 'rate_limited',
      `${refused!.max} requests with a key that is not valid came from ${request.ip} this minute, so keys from it are refused for ${wait} s: wait, then send a valid key (npm run keys -- list shows which are active)`,
      { limit: refused!.max, retryAfter: wait },
    );
  }
  const bearer = BEARER.exec(header);
  if (!bearer) {
    refused?.record(request.ip);
    reply.header('www-authenticate', 'Bearer realm="docket", error="invalid_request"');
    throw new ApiError(401, 'unauthorized', 'the Authorization header is not "Bearer <key>": send the key Docket gave you as "Authorization: Bearer dk_..."');
  }
  const key = await keyStore(request, () => options.keys.authenticate(bearer[1]));
  if (!key) {
    refused?.record(request.ip);
    reply.header('www-authenticate', 'Bearer realm="docket", error="invalid_token"');
    const needed = request.routeOptions.config.role;
    const wanted = needed ? `a key with the ${needed} role` : 'a key';
    throw new ApiError(
      401, 'unauthorized',
      `this key is not valid: it was never issued or has been revoked; ask for ${wanted} (an admin creates one with: npm run keys -- create --name <name> --role ${needed ?? 'read'})`,
      needed ? { needed } : undefined,
    );
  }
  return { kind: 'key', key, role: key.role };
}

async function anonymousRole(request: FastifyRequest, options: AuthOptions): Promise<Role | undefined> {
  const { role, untilFirstKey } = options.anonymous;
  if (!role || !untilFirstKey) return role;
  return (await keyStore(request, () => options.keys.hasActiveKeys())) ? undefined : role;
}

/** A broken key file refuses service, rather than letting everyone in or showing the file's path. */
async function keyStore<T>(request: FastifyRequest, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    request.log.error({ err: error }, 'the key file cannot be read');
    throw new ApiError(503, 'unavailable', 'Docket cannot read its key file, so it cannot check keys; the gateway log says why');
  }
}
