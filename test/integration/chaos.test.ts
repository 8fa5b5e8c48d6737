import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { type ChaosFigures, ChaosRun, type Fault } from '../helpers/chaos';
import { Launcher } from '../helpers/launcher';
import { poll } from '../helpers/system';

/**
 * Docket's promise under faults: the short chaos run (test/helpers/chaos.ts; `npm run bench:chaos` is
 * the full one) on a production stack the test starts, and `npm start` losing its Temporal dev server.
 */
const CI_FAULTS: Fault[] = ['gateway', 'worker', 'engine:fileinfo', 'temporal', 'postgres', 's3'];

describe('chaos: each part of the production stack killed with SIGKILL during a mixed run', () => {
  let run: ChaosRun | undefined;
  let figures: ChaosFigures;

  beforeAll(async () => {
    run = await ChaosRun.start({ jobs: 28, faults: CI_FAULTS, settleMs: 180_000 });
    figures = await run.run();
  }, 900_000);
  afterAll(async () => {
    await run?.stop();
  }, 120_000);

  it('injects every fault and accepts jobs through all of them', () => {
    expect(figures.faults.map((report) => report.fault)).toEqual(CI_FAULTS);
    expect(figures.jobsAccepted).toBeGreaterThanOrEqual(28);
  });

  it.each(CI_FAULTS)('keeps every promise after the %s is killed and restarted', (fault) => {
    expect(figures.faults.find((report) => report.fault === fault)?.problems).toEqual([]);
  });

  it('brings every accepted job to a terminal state with the right result', () => {
    expect(figures.finalProblems).toEqual([]);
    expect(figures.jobsCompleted).toBe(figures.jobsAccepted);
  });

  it('reports a blob nothing references as orphaned, and not the blobs of a workflow whose id the client never learned', () => {
    expect(figures.blobCheckProblems).toEqual([]);
  });

  it('runs each approved blocklist action exactly once, and leaves no container, volume or orphaned blob', () => {
    expect({ duplicates: figures.duplicates, orphans: figures.orphans, containers: figures.leftoverContainers, volumes: figures.leftoverVolumes })
      .toEqual({ duplicates: 0, orphans: 0, containers: 0, volumes: 0 });
  });

  it('answers 503 with Retry-After while Temporal or the blob store is down, never another 5xx or a hang, and /readyz names the part', () => {
    expect(figures.answers503).toBeGreaterThan(0);
    expect({ withoutRetryAfter: figures.answers503WithoutRetryAfter, serverErrors: figures.serverErrors, hangs: figures.hangs })
      .toEqual({ withoutRetryAfter: 0, serverErrors: 0, hangs: 0 });
    const byFault = new Map(figures.faults.map((report) => [report.fault, report]));
    expect(byFault.get('temporal')!.readyzDown).toContain('temporal');
    expect(byFault.get('temporal')!.answersWhileDown).toEqual(['503', '503']);
    expect(byFault.get('s3')!.readyzDown).toContain('blobs');
    expect(byFault.get('s3')!.answersWhileDown[0]).toBe('503');
  });

  it('gives an upload cut off mid-stream (client gone, or gateway killed) an error, never a job id', () => {
    expect(figures.cutUploads).toBe(2);
    expect(figures.cutUploadsGivenAnId).toBe(0);
  });
});

interface Answer { status: number; retryAfter: string | null; jobid?: string; content: string }

/** One upload with its own content; `status` 0 when nothing answered. */
async function uploadOnce(baseUrl: string, label: string): Promise<Answer> {
  const content = `${label} ${randomBytes(12).toString('hex')}\n`;
  const form = new FormData();
  form.append('upload', new Blob([content]), 'sample.txt');
  try {
    const response = await fetch(`${baseUrl}/fileinfo/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) });
    const body = await response.json().catch(() => ({})) as { jobid?: string };
    return { status: response.status, retryAfter: response.headers.get('retry-after'), jobid: body.jobid, content };
  } catch (error) {
    return { status: (error as Error).name === 'TimeoutError' ? -1 : 0, retryAfter: null, content };
  }
}

describe('npm start: the Temporal dev server killed with 20 uploads in flight', () => {
  let launcher: Launcher | undefined;
  let holder: Server | undefined;

  afterAll(async () => {
    holder?.close();
    await launcher?.kill();
  }, 60_000);

  it('answers 503 with Retry-After (never 500) while it is down, and completes every accepted upload once the launcher restarts it', async () => {
    launcher = await Launcher.start();
    await launcher.waitFor(/docket: running; gateway on/);
    const [, pid] = (await launcher.waitFor(/supervisor: temporal runs its command as pid (\d+)/))[0];

    const inFlight = Array.from({ length: 20 }, (_, index) => uploadOnce(launcher!.baseUrl, `in flight ${index}`));
    process.kill(Number(pid), 'SIGKILL');
    await launcher.waitFor(/supervisor: temporal \(pid \d+\) ended with signal SIGKILL/);
    // Hold the port for a while, as a slow restart would: the supervisor's next attempt fails and backs
    // off. Connections are closed at once, as on a closed port: a held one would look like a server.
    holder = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => { holder!.once('error', reject); holder!.listen(launcher!.ports.temporal, '127.0.0.1', resolve); });
    const whileDown = await Promise.all(Array.from({ length: 3 }, (_, index) => uploadOnce(launcher!.baseUrl, `while down ${index}`)));
    const readyz = await fetch(`${launcher.baseUrl}/readyz`, { signal: AbortSignal.timeout(60_000) });
    const readiness = await readyz.json() as { checks: Record<string, { ok: boolean }> };
    await new Promise<void>((resolve) => holder!.close(() => resolve()));
    holder = undefined;

    expect(whileDown.map((answer) => [answer.status, answer.retryAfter])).toEqual(whileDown.map(() => [503, '5']));
    expect(readyz.status).toBe(503);
    expect(readiness.checks.temporal.ok).toBe(false);

    const answers = [...await Promise.all(inFlight), ...whileDown];
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status !== 200 && status !== 503)).toEqual([]);
    for (const refused of answers.filter((answer) => answer.status === 503)) expect(refused.retryAfter).toBe('5');

    await launcher.waitFor(/supervisor: temporal runs its command as pid (\d+)/, 1);
    const accepted = answers.filter((answer) => answer.status === 200);
    const results = await Promise.all(accepted.map((answer) => poll(
      () => fetch(`${launcher!.baseUrl}/result/${answer.jobid}`).then(async (r) => (await r.json()) as Record<string, any>, () => ({} as Record<string, any>)),
      (body) => ['Success', 'Fail'].includes(body.status), `job ${answer.jobid}`, 240_000,
    ).catch((error: Error) => ({ status: `${error.message}\nthe launcher's output:\n${launcher!.output.slice(-4000)}` }))));
    expect(results.map((result) => result.status)).toEqual(accepted.map(() => 'Success'));
    // What was refused can be sent again once Temporal is back, and is then accepted.
    const again = await poll(() => uploadOnce(launcher!.baseUrl, 'after the restart'), (answer) => answer.status === 200, 'an upload after the restart', 120_000);
    expect(createHash('sha256').update(again.content).digest('hex')).toHaveLength(64);
  }, 600_000);
});
