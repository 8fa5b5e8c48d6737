import { connect } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { clientErrorHandler, errorHandling, frameworkErrors, RETRY_AFTER_SECONDS } from '../../gateway/errors';
import { listen, type Send } from '../helpers/http';

/** An error shaped as the Temporal client throws it when a call's deadline passes (gRPC DEADLINE_EXCEEDED). */
function deadlinePassed(): Error {
  return Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 });
}

const servers: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function gateway(): Promise<Send> {
  const app = Fastify();
  servers.push(app);
  await app.register(errorHandling);
  app.get('/read', async () => { throw deadlinePassed(); });
  app.post('/approve', async () => { throw Object.assign(new Error('wrapped'), { cause: deadlinePassed() }); });
  app.post('/store', async () => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }); });
  app.post('/broken', async () => { throw new Error('a bug'); });
  return listen(app);
}

describe('the gateway when a part it needs does not answer', () => {
  it('answers a read with 503 and Retry-After, naming Temporal', async () => {
    const app = await gateway();
    const response = await app({ method: 'GET', url: '/read' });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
    expect(response.json().error.code).toBe('unavailable');
    expect(response.json().error.message).toMatch(/^Temporal is not answering/);
    expect(response.json().error.message).not.toContain('may still take effect');
  });

  it('never tells a writer that nothing was done: the change may have reached Temporal before its answer was lost', async () => {
    const app = await gateway();
    for (const url of ['/approve', '/store']) {
      const response = await app({ method: 'POST', url });
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
      expect(response.json().error.message).toContain('may still take effect');
      expect(response.json().error.message).not.toContain('nothing was done');
    }
    expect((await app({ method: 'POST', url: '/store' })).json().error.message).toMatch(/^the blob store is not answering/);
  });

  it('keeps other failures as 500 without their stack', async () => {
    const app = await gateway();
    const response = await app({ method: 'POST', url: '/broken' });
    expect(response.statusCode).toBe(500);
    expect(response.json().error.code).toBe('internal');
    expect(response.body).not.toContain('at ');
  });
});

/** Sends `chunks` on a raw connection, one write each, and reads the whole answer. */
function rawExchange(port: number, chunks: string[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => { answer += data; });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const [head, body] = [answer.slice(0, answer.indexOf('\r\n\r\n')), answer.slice(answer.indexOf('\r\n\r\n') + 4)];
      try {
        resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(body) });
      } catch (error) {
        reject(new Error(`not an HTTP answer with a JSON body: ${answer.slice(0, 200)} (${(error as Error).message})`));
      }
    });
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        if (!socket.writable) break;
        socket.write(chunk);
        await new Promise((wait) => setTimeout(wait, 50));
      }
    });
  });
}

describe('requests too large to route', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    app = Fastify({ clientErrorHandler, frameworkErrors });
    await app.register(errorHandling);
    app.post('/api/job/_search', async () => ({}));
    app.post('/v1/investigations', async () => ({}));
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(() => app.close());

  const longLine = (path: string) => `POST ${path}?sort=${'x'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n`;

  it('answers a Cortex path in Cortex\'s error shape when the request line came whole', async () => {
    const { status, body } = await rawExchange(port, [longLine('/api/job/_search')]);
    expect(status).toBe(431);
    expect(body).toEqual({ type: 'BadRequest', message: expect.stringContaining('larger than 16 KiB') });
  });

  it('answers other paths, and a line whose start the refused bytes do not hold, in Docket\'s shape', async () => {
    const docket = await rawExchange(port, [longLine('/v1/investigations')]);
    expect(docket.status).toBe(431);
    expect(docket.body.error.code).toBe('headers_too_large');
    const line = longLine('/api/job/_search');
    const split = await rawExchange(port, [line.slice(0, 1_000), line.slice(1_000)]);
    expect(split.status).toBe(431);
    expect(split.body.error.code).toBe('headers_too_large');
  });
});
