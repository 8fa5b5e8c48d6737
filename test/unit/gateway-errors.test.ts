import Fastify, { type FastifyInstance } from 'fastify';
import { errorHandling, RETRY_AFTER_SECONDS } from '../../gateway/errors';
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
