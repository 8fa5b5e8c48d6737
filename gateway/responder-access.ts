import type { FastifyReply, FastifyRequest } from 'fastify';
import { describeCaller } from './auth';
import { ApiError } from './errors';
import { roleAtLeast } from './keys';

/**
 * Responders act on the world, so asking for one by name needs the respond role, whatever route
 * the request came by; the response then still waits for approval where the policy says so. Throws
 * before anything is stored or started.
 */
export function requireRespondRole(request: FastifyRequest, reply: FastifyReply, responders: string[]): void {
  if (!responders.length) return;
  const caller = request.caller;
  if (caller?.role && roleAtLeast(caller.role, 'respond')) return;
  const named = `responder${responders.length > 1 ? 's' : ''} ${responders.join(', ')}`;
  const howToGet = 'an admin creates one with: npm run keys -- create --name <name> --role respond';
  if (caller?.kind !== 'key') {
    reply.header('www-authenticate', 'Bearer realm="docket"');
    throw new ApiError(401, 'unauthorized', `asking for ${named} needs a key with the respond role; callers without a key may not: send "Authorization: Bearer <key>"; ${howToGet}`, {
      needed: 'respond', responders,
    });
  }
  throw new ApiError(403, 'forbidden', `${describeCaller(caller)} has the ${caller.role} role; asking for ${named} needs the respond role: ask for a key with that role (${howToGet})`, {
    needed: 'respond', role: caller.role, responders,
  });
}
