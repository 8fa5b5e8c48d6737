import { enginesFolder, getJson } from '../helpers/fixtures';
import { startTestSystem, type TestSystem } from '../helpers/system';

/** `?wait=` on the status reads: the answer comes when the job finishes, so a client need not poll. */
describe('long-poll status reads', () => {
  let docket: TestSystem;
  const engine = (name: string, seconds: number) => ({
    name, kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['file'], protocol: 'stdout',
    command: ['/bin/sh', '-c', `sleep ${seconds}; echo finished`], timeout: '120s', cache: 0, concurrency: 4,
  });
  beforeAll(async () => {
    docket = await startTestSystem({ enginesDir: enginesFolder([engine('brief', 2), engine('slow', 60)]) });
  });
  afterAll(async () => {
    await docket?.close();
  });

  const upload = async (name: string) => {
    const form = new FormData();
    form.append('upload', new Blob([`sample for ${name} ${Math.random()}`]), 'sample.txt');
    const response = await fetch(`${docket.baseUrl}/${name}/upload`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    return ((await response.json()) as { jobid: string }).jobid;
  };

  it('answers GET /result/<id>?wait=30s once the job has finished, with its Success, in one request', async () => {
    const jobid = await upload('brief');
    const { status, body } = await getJson(`${docket.baseUrl}/result/${jobid}?wait=30s`);
    expect(status).toBe(200);
    expect(body.status).toBe('Success');
    expect(body.summary).toContain('finished');
  });

  it('answers GET /v1/investigations/<id>?wait=30s once the investigation has finished, with its report', async () => {
    const jobid = await upload('brief');
    const { status, body } = await getJson(`${docket.baseUrl}/v1/investigations/${jobid}?wait=30s`);
    expect(status).toBe(200);
    expect(body.state).toBe('completed');
    expect(body.report.status).toBe('Success');
  });

  it('answers with the state as it is when the wait ends before the job does', async () => {
    const jobid = await upload('slow');
    try {
      const result = await getJson(`${docket.baseUrl}/result/${jobid}?wait=1s`);
      expect(result.status).toBe(200);
      expect(['Received', 'Running']).toContain(result.body.status);
      const investigation = await getJson(`${docket.baseUrl}/v1/investigations/${jobid}?wait=500ms`);
      expect(investigation.status).toBe(200);
      expect(investigation.body.state).toBe('running');
    } finally {
      await docket.client.workflow.getHandle(jobid).cancel();
    }
  });

  it('answers a finished job at once whatever the wait, and an unknown id with 404', async () => {
    const jobid = await upload('brief');
    await getJson(`${docket.baseUrl}/result/${jobid}?wait=30s`);
    expect((await getJson(`${docket.baseUrl}/result/${jobid}?wait=60s`)).body.status).toBe('Success');
    const unknown = await getJson(`${docket.baseUrl}/result/no-such-job?wait=30s`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('no job no-such-job');
  });

  it.each(['61s', '1h', 'soon', '-5', '30 s', '123456'])('refuses wait=%s with 400 saying what a wait may be', async (wait) => {
    const jobid = await upload('brief');
    for (const path of [`/result/${jobid}`, `/v1/investigations/${jobid}`]) {
      const { status, body } = await getJson(`${docket.baseUrl}${path}?wait=${encodeURIComponent(wait)}`);
      expect(status).toBe(400);
      expect(body.error.code).toBe('bad_request');
      expect(JSON.stringify(body.error)).toMatch(/wait is (a duration such as 30s|at most 60s)/);
    }
  });
});
