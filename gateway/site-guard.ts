import { isIP } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './errors';

/**
 * Keeps web pages from using the operator's browser against the gateway. Other clients are not the
 * concern here: they choose their own headers, and keys and roles govern them.
 *
 * DNS rebinding: a page at `http://rebind.attacker.example:8100/` whose name the attacker then points
 * at 127.0.0.1 is, to the browser, same-origin with the gateway, so it can send anything and read
 * every answer. Its requests still carry the attacker's name in `Host`, so the gateway answers only
 * to names it was told about. IP addresses are always answered: a page can only be same-origin with an
 * address when the address itself served it, so rebinding needs a name.
 *
 * Cross-site requests: any page may send a form-encoded or multipart POST anywhere without a CORS
 * preflight (a "simple" request). The browser reports where it came from in `Sec-Fetch-Site` (and,
 * older browsers, in `Origin`), so state-changing requests from other sites' pages are refused unless
 * they carry a key, which no page can make a browser attach by itself.
 */
export interface SiteGuardOptions {
  /** Host names answered besides IP addresses (`allowedHosts()`); `*` answers every name. */
  allowedHosts: readonly string[];
}

export const ANY_HOST = '*';
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
// `none` is a navigation the user started (address bar, bookmark), not a page.
const OWN_FETCH_SITES = new Set(['same-origin', 'none']);
// Probes from orchestrators use whatever name or address reaches the pod; these routes expose nothing.
const ANY_HOST_ROUTES = new Set(['/healthz', '/readyz']);
// Browsers attach Basic and Negotiate credentials to cross-site requests by themselves, never a bearer token.
const BEARER = /^Bearer\s/i;
const SHOWN_CHARS = 100;

/**
 * The names `DOCKET_ALLOWED_HOSTS` adds to `localhost`, and `DOCKET_HOST` when it is a name (an address,
 * `0.0.0.0` and `::` included, is answered anyway).
 */
export function allowedHosts(setting: string, bindHost: string): string[] {
  const names = ['localhost', ...setting.split(',').map((name) => name.trim()).filter(Boolean)];
  if (isIP(hostName(bindHost)) === 0) names.push(bindHost);
  return names;
}

export const siteGuard = fp(async (app: FastifyInstance, options: SiteGuardOptions) => {
  const anyHost = options.allowedHosts.includes(ANY_HOST);
  const names = new Set(options.allowedHosts.map(hostName));

  app.addHook('onRequest', async (request) => {
    const host = request.headers.host;
    // HTTP/1.0 may leave Host out; browsers never do, so such a request is no rebinding.
    if (host !== undefined && !anyHost && !ANY_HOST_ROUTES.has(request.routeOptions.url ?? '')) {
      const name = hostName(host);
      if (!names.has(name) && isIP(name) === 0) {
        const shown = JSON.stringify(name.slice(0, SHOWN_CHARS));
        throw new ApiError(
          421, 'misdirected_request',
          `this gateway does not answer to the host name ${shown} (a page under a name Docket was not told about may be a DNS-rebinding attack); if Docket is reached under that name, add it to DOCKET_ALLOWED_HOSTS (comma-separated)`,
          { host: name.slice(0, SHOWN_CHARS), setting: 'DOCKET_ALLOWED_HOSTS' },
        );
      }
    }
    if (!STATE_CHANGING.has(request.method) || BEARER.test(request.headers.authorization ?? '')) return;
    const sender = foreignSender(request);
    if (sender) {
      throw new ApiError(
        403, 'cross_site',
        `${request.method} ${routeOf(request)} was sent by a page on another site (${sender.header}: ${sender.shown}); browsers may change things only from Docket's own pages (the console). API clients send their key as "Authorization: Bearer <key>"`,
        { header: sender.header, value: sender.shown },
      );
    }
  });
});

/** Which header shows the request came from another site's page, if one does. */
function foreignSender(request: FastifyRequest): { header: string; shown: string } | undefined {
  // The browser sets Sec-Fetch-Site and pages cannot, so it is believed over Origin: behind a proxy that
  // rewrites Host, the console's own requests carry an Origin that differs from the Host seen here.
  // `same-site` is refused too: every other port on localhost is the same site.
  const site = single(request.headers['sec-fetch-site']);
  if (site !== undefined) return OWN_FETCH_SITES.has(site) ? undefined : { header: 'Sec-Fetch-Site', shown: site.slice(0, SHOWN_CHARS) };
  const origin = single(request.headers.origin);
  if (origin === undefined || isOwnOrigin(origin, request.headers.host)) return undefined;
  return { header: 'Origin', shown: origin.slice(0, SHOWN_CHARS) };
}

/**
 * The Origin names the host and port the request was sent to. The scheme is the Origin's own: behind a
 * proxy that ends TLS the page is https while the gateway sees http, and the scheme only decides which
 * port an absent one means.
 */
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const page = new URL(origin);
    if (page.protocol !== 'http:' && page.protocol !== 'https:') return false;
    return new URL(`${page.protocol}//${host}`).origin === page.origin;
  } catch {
    // `Origin: null` (sandboxed frames, files, redirects) and anything unparsable name no site of Docket's.
    return false;
  }
}

/** A Host header or entry as a bare name: no port, no IPv6 brackets, no trailing dot, lower case. */
function hostName(authority: string): string {
  let name = authority.trim().toLowerCase();
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    name = name.slice(1, end === -1 ? undefined : end);
  } else if (name.indexOf(':') === name.lastIndexOf(':')) {
    // One colon is a port; more is an IPv6 address written without brackets.
    name = name.split(':')[0];
  }
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? request.url.split('?')[0].slice(0, SHOWN_CHARS);
}
