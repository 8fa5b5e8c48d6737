import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Connection } from '@temporalio/client';
import { temporalClientInterceptors } from '../../system/temporal-deadline';

/**
 * A call to Temporal that fails with UNAVAILABLE waits on a timer to be retried (the SDK's retry
 * interceptor). Closing the connection meanwhile must end that call, not leave the timer to throw
 * "Channel has been shut down" where nothing catches it: in a test run that fails whichever suite is
 * running when it fires, in a role it ends the process. The server here closes every connection at
 * once, on loopback, so each attempt fails fast.
 */
describe('closing the Temporal client connection while a call waits to be retried', () => {
  let server: Server;
  let address: string;
  beforeAll(async () => {
    server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('ends the call as cancelled, and nothing throws once the retry comes due', async () => {
    const connection = Connection.lazy({ address, interceptors: temporalClientInterceptors(60_000) });
    const outcome = connection.workflowService.getSystemInfo({}).then(() => undefined, (error: Error) => error);
    // The first attempts fail at once, and the retry delays grow (about 170, 290, 490 ms…): by now one is pending.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await connection.close();
    const bound = new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 15_000).unref());
    const ended = await Promise.race([outcome, bound]);
    expect(ended).toBeInstanceOf(Error);
    expect((ended as Error).message).toMatch(/CANCELLED|closed/i);
    // Whatever timer the retry interceptor still holds comes due within its longest delay (5 s); a throw there fails this test.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
  }, 30_000);
});
