import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { describeCaller } from './auth';

/** One audit line per state-changing call; a test passes its own sink to read them. */
export type AuditSink = (line: string) => void;

export const stdoutAudit: AuditSink = (line) => {
  process.stdout.write(`${line}\n`);
};

export interface AuditEntry {
  time: string;
  audit: 'http';
  caller: string;
  /** Only the id and name of a key: never the key, never a header. */
  key?: { id: string; name: string; role: string };
  ip: string;
  method: string;
  /** The route's pattern, not the URL, so no query string (which may hold anything) is written. */
  route: string;
  /** Path parameters and the ids the reply named (`jobid`, `id`). */
  ids: Record<string, string>;
  status: number | 'aborted';
  ms?: number;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const REPLY_IDS = ['jobid', 'id', 'workflowId', 'scheduleId'];
const MAX_ID = 200;
const MAX_PARSED_REPLY = 64 * 1024;

const replyIds = new WeakMap<FastifyRequest, Record<string, string>>();

export const audit = fp(async (app: FastifyInstance, options: { sink: AuditSink }) => {
  app.addHook('onSend', async (request, reply, payload) => {
    if (!STATE_CHANGING.has(request.method) || typeof payload !== 'string' || payload.length > MAX_PARSED_REPLY) return payload;
    if (!String(reply.getHeader('content-type') ?? '').includes('json')) return payload;
    replyIds.set(request, idsIn(payload));
    return payload;
  });

  const write = (request: FastifyRequest, status: AuditEntry['status'], ms?: number) => {
    if (!STATE_CHANGING.has(request.method)) return;
    const caller = request.caller;
    const entry: AuditEntry = {
      time: new Date().toISOString(),
      audit: 'http',
      caller: describeCaller(caller),
      key: caller?.kind === 'key' ? { id: caller.key.id, name: caller.key.name, role: caller.key.role } : undefined,
      ip: request.ip,
      method: request.method,
      route: request.routeOptions.url ?? '(no route)',
      ids: { ...paramIds(request), ...replyIds.get(request) },
      status,
      ms: ms === undefined ? undefined : Math.round(ms),
    };
    options.sink(JSON.stringify(entry));
  };

  app.addHook('onResponse', async (request, reply) => write(request, reply.statusCode, reply.elapsedTime));
  app.addHook('onRequestAbort', async (request) => write(request, 'aborted'));
});

function paramIds(request: FastifyRequest): Record<string, string> {
  // Without a route, the "parameters" are the whole unmatched path, which may hold anything.
  if (!request.routeOptions.url) return {};
  const params = (request.params ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(params).filter(([, value]) => typeof value === 'string').map(([name, value]) => [name, (value as string).slice(0, MAX_ID)]));
}

function idsIn(payload: string): Record<string, string> {
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return {};
  }
  if (!body || typeof body !== 'object') return {};
  const found: Record<string, string> = {};
  for (const name of REPLY_IDS) {
    const value = (body as Record<string, unknown>)[name];
    if (typeof value === 'string' || typeof value === 'number') found[name] = String(value).slice(0, MAX_ID);
  }
  return found;
}
