import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { enginesFolder, fileinfoManifest, getJson } from '../helpers/fixtures';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';

/** Streamed uploads: verified, bounded, sanitised, and nothing left behind when refused or aborted. */
describe('uploads', () => {
  let docket: TestSystem;
  beforeAll(async () => {
    docket = await startTestSystem({ enginesDir: enginesFolder([fileinfoManifest]), workers: false });
  });
  afterAll(async () => {
    await docket?.close();
  });

  const stored = () => readdirSync(join(docket.dataDir, 'blobs', 'sha256')).length;
  const temporary = () => readdirSync(join(docket.dataDir, 'blobs', 'tmp'));
  const investigate = (form: FormData) => fetch(`${docket.baseUrl}/v1/investigations`, { method: 'POST', body: form });

  it('verifies a client-supplied sha256 and keeps nothing when it does not match', async () => {
    const before = stored();
    const form = new FormData();
    form.append('sha256', 'f'.repeat(64));
    form.append('file', new Blob(['the real content']), 'sample.txt');
    const refused = await investigate(form);
    expect(refused.status).toBe(400);
    const actual = createHash('sha256').update('the real content').digest('hex');
    expect(((await refused.json()) as any).error.message).toBe(`file sample.txt: the content's sha256 is ${actual}, not the ${'f'.repeat(64)} the client sent`);
    expect(stored()).toBe(before);
    expect(temporary()).toEqual([]);

    const good = new FormData();
    good.append('sha256', actual);
    good.append('file', new Blob(['the real content']), 'sample.txt');
    expect((await investigate(good)).status).toBe(202);
  });

  it('reduces a hostile file name to a safe base name', async () => {
    const form = new FormData();
    form.append('upload', new Blob(['x']), '../../etc/pass\u0001wd');
    const response = await fetch(`${docket.baseUrl}/fileinfo/upload`, { method: 'POST', body: form });
    const { jobid } = (await response.json()) as { jobid: string };
    const history = await docket.client.workflow.getHandle(jobid).fetchHistory();
    const input = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0];
    expect(JSON.parse(Buffer.from(input.data!).toString()).files[0].filename).toBe('passwd');
  });

  it('refuses a request with more parts than allowed, with 400', async () => {
    const form = new FormData();
    for (let i = 0; i < 40; i += 1) form.append(`field${i}`, 'x');
    form.append('upload', new Blob(['x']), 'a.txt');
    const response = await fetch(`${docket.baseUrl}/fileinfo/upload`, { method: 'POST', body: form });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error.code).toBe('bad_request');
  });

  it('leaves nothing on disk when the client goes away in the middle of an upload', async () => {
    const before = stored();
    const url = new URL(docket.baseUrl);
    const boundary = 'docketboundary';
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write([
      'POST /fileinfo/upload HTTP/1.1', `Host: ${url.host}`, `Content-Type: multipart/form-data; boundary=${boundary}`,
      'Content-Length: 10000000', '', `--${boundary}`, 'Content-Disposition: form-data; name="upload"; filename="big.bin"',
      'Content-Type: application/octet-stream', '', '',
    ].join('\r\n'));
    socket.write(Buffer.alloc(256 * 1024, 1));
    await poll(async () => temporary().length, (count) => count === 1, 'the upload to start streaming', 10_000);
    socket.destroy();
    await poll(async () => temporary().length, (count) => count === 0, 'the partial upload to be removed', 10_000);
    expect(stored()).toBe(before);
    expect((await getJson(`${docket.baseUrl}/healthz`)).status).toBe(200);
  });
});
