import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { enginesFolder, fileinfoManifest, getJson, upload } from '../helpers/fixtures';
import { leftovers, leftoversGone } from '../helpers/engines';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';

/** Upload a file, run an engine container, read the result: Menagerie's API on real Temporal and Docker. */
describe('walking skeleton', () => {
  let docket: TestSystem;
  const engines = enginesFolder([
    fileinfoManifest,
    { ...fileinfoManifest, name: 'fileinfo-menagerie', protocol: 'file', command: ['/engine/fileinfo.py', '--file', '/data/input', '--result', '/data/result'] },
    { ...fileinfoManifest, name: 'tiny', sizelimit: '1k' },
    { ...fileinfoManifest, name: 'whois', accepts: ['domain'] },
  ]);

  beforeAll(async () => {
    docket = await startTestSystem({ enginesDir: engines });
  });
  afterAll(async () => {
    await docket?.close();
  });

  const finished = (id: string) =>
    poll(() => getJson(`${docket.baseUrl}/result/${id}`), (r) => ['Success', 'Fail'].includes(r.body.status), `job ${id}`);

  it.each(['fileinfo', 'fileinfo-menagerie'])('analyzes an uploaded file with %s and serves the result', async (engine) => {
    const content = `an uploaded sample for ${engine}\n`;
    const accepted = await upload(docket.baseUrl, engine, content, 'notes.txt');
    expect(accepted.status).toBe(200);
    expect(accepted.body.jobid).toMatch(/^[0-9a-f-]{36}$/);

    const result = await finished(accepted.body.jobid);
    expect(result.body).toMatchObject({ status: 'Success', link: `/link/${accepted.body.jobid}` });

    const link = await fetch(`${docket.baseUrl}${result.body.link}`);
    expect(link.status).toBe(200);
    const bytes = Buffer.from(await link.arrayBuffer());
    expect(result.body.summary).toBe(bytes.subarray(0, 80).toString());
    const report = JSON.parse(bytes.toString());
    const info = report.full ?? report;
    expect(info.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(info.size).toBe(Buffer.byteLength(content));
    expect(info.mimetype).toBe('text/plain');
    // Removed after the job answered, in the background.
    expect(await leftoversGone(() => leftovers(accepted.body.jobid))).toEqual({ containers: 0, volumes: 0 });

    const byIndex = await fetch(`${docket.baseUrl}${result.body.link}?job=0`);
    expect(Buffer.from(await byIndex.arrayBuffer())).toEqual(bytes);
    const beyond = await getJson(`${docket.baseUrl}${result.body.link}?job=3`);
    expect(beyond.status).toBe(404);
    expect(beyond.body.error.message).toBe(`job ${accepted.body.jobid} has 1 engine job(s); ?job= counts from 0`);
  });

  it('answers 404 naming the engines there are for an unknown engine', async () => {
    const response = await upload(docket.baseUrl, 'apktol', 'x');
    expect(response.status).toBe(404);
    expect(response.body.error.message).toBe('engine apktol is not declared; the engines are: fileinfo, fileinfo-menagerie, tiny, whois');
  });

  it('answers 400 when the file is not in the upload field', async () => {
    const response = await upload(docket.baseUrl, 'fileinfo', 'x', 'a.txt', 'file');
    expect(response.status).toBe(400);
    expect(response.body.error.message).toContain('field named upload');
  });

  it('answers 400 to a request that is not multipart', async () => {
    const response = await fetch(`${docket.baseUrl}/fileinfo/upload`, { method: 'POST', body: 'raw', headers: { 'content-type': 'text/plain' } });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error.message).toContain('multipart/form-data');
  });

  it('answers 400 when the engine does not take files', async () => {
    const response = await upload(docket.baseUrl, 'whois', 'x');
    expect(response.status).toBe(400);
    expect(response.body.error.message).toContain('accepts domain');
  });

  it('refuses an upload over the engine sizelimit with 413 and stores nothing', async () => {
    const before = readdirSync(join(docket.dataDir, 'blobs', 'sha256')).length;
    const response = await upload(docket.baseUrl, 'tiny', Buffer.alloc(4096, 7));
    expect(response.status).toBe(413);
    expect(response.body.error.message).toContain('1.0 KiB');
    expect(readdirSync(join(docket.dataDir, 'blobs', 'tmp'))).toEqual([]);
    expect(readdirSync(join(docket.dataDir, 'blobs', 'sha256')).length).toBe(before);
  });

  it('answers 404 for a job that does not exist, on /result and /link', async () => {
    expect((await getJson(`${docket.baseUrl}/result/no-such-job`)).status).toBe(404);
    const link = await getJson(`${docket.baseUrl}/link/no-such-job`);
    expect(link.status).toBe(404);
    expect(link.body.error).toMatchObject({ code: 'not_found', message: 'no job no-such-job: use the jobid that the upload answered' });
  });

  it('answers unknown routes with JSON, never HTML', async () => {
    const response = await getJson(`${docket.baseUrl}/nowhere/at/all`);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('not_found');
  });
});

describe('durability', () => {
  it('keeps a job accepted while no worker runs, shows it Received, and finishes it when a worker starts', async () => {
    const engines = enginesFolder([fileinfoManifest]);
    const gateway = await startTestSystem({ enginesDir: engines, workers: false });
    try {
      const accepted = await upload(gateway.baseUrl, 'fileinfo', 'waiting for a worker');
      expect(accepted.status).toBe(200);
      await new Promise((r) => setTimeout(r, 1000));
      expect((await getJson(`${gateway.baseUrl}/result/${accepted.body.jobid}`)).body.status).toBe('Received');
      const workers = await startTestSystem({ shareWith: gateway, gateway: false });
      try {
        const result = await poll(
          () => getJson(`${gateway.baseUrl}/result/${accepted.body.jobid}`),
          (r) => r.body.status === 'Success',
          'the job to finish once a worker runs',
        );
        expect(result.body.summary).toContain('"success": true');
      } finally {
        await workers.close();
      }
    } finally {
      await gateway.close();
    }
  });
});
