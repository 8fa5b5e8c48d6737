import { request as httpRequest } from 'node:http';
import type { FastifyInstance } from 'fastify';

/**
 * `app.inject` over a real socket. Fastify's own `inject` cannot run under Jest on Node 20: its
 * light-my-request needs the ESM-only `cookie` 2, which Jest's module loader cannot require there.
 * A real socket also puts Node's HTTP parser in front of the gateway, as in production.
 */
export interface Sent {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json(): any;
}

export type Send = (sent: Sent) => Promise<Answer>;

/** Listens on a free loopback port and returns a function that sends one request to it. */
export async function listen(app: FastifyInstance): Promise<Send> {
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  return (sent) => send(url, sent);
}

function send(base: URL, sent: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({
      host: base.hostname,
      port: base.port,
      method: sent.method,
      path: sent.url,
      // Framed explicitly: Node sends no length for a DELETE or OPTIONS body, which the server would
      // then read as the start of the next request.
      headers: sent.body === undefined ? sent.headers : { 'content-length': String(Buffer.byteLength(sent.body)), ...sent.headers },
      agent: false,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, body, json: () => JSON.parse(body) });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(sent.body);
  });
}
