import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import { WorkflowType } from '../../contract/messages';
import { freePort } from '../../system/temporal-dev';
import { enginesFolder, fileinfoManifest, getJson, upload } from '../helpers/fixtures';
import { OwnDockerd } from '../helpers/own-dockerd';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * Engine workers on two Docker hosts serving the same task queues: a second dockerd started on this
 * machine with its own data root, exec root, pidfile, unix socket, network namespace and no bridge
 * (so it adds no iptables rules and leaves the first daemon's networks alone; test/helpers/own-dockerd.ts). One engines role runs in this process
 * against the first daemon, the other is `bin/docket engines` in a child process against the second.
 */
const IMAGES = ['docket/base:bookworm', 'docket/fileinfo:1.0'];
const SPREAD = 'fileinfo-spread';
const NAP = 'nap';

/** Which jobs (the `docket.job` label) each engine container that started on `client` belonged to. */
class ContainerStarts {
  readonly jobs: string[] = [];
  private stream?: NodeJS.ReadableStream & { destroy?: () => void };

  static async watch(client: Docker, engines: string[]): Promise<ContainerStarts> {
    const starts = new ContainerStarts();
    starts.stream = await client.getEvents({
      // Several label filters must all match (AND), so the engines are picked out below.
      filters: { type: ['container'], event: ['start'], label: ['docket.engine'] },
    }) as NodeJS.ReadableStream & { destroy?: () => void };
    let pending = '';
    starts.stream.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines.filter(Boolean)) {
        const event = JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } };
        const attributes = event.Actor?.Attributes ?? {};
        if (engines.includes(attributes['docket.engine']) && attributes['docket.job']) starts.jobs.push(attributes['docket.job']);
      }
    });
    starts.stream.on('error', () => undefined);
    return starts;
  }

  count(job: string): number {
    return this.jobs.filter((one) => one === job).length;
  }

  close(): void {
    this.stream?.destroy?.();
  }
}

describe('engine workers on two Docker hosts', () => {
  let daemon: OwnDockerd | undefined;
  let main: TestSystem;
  let local: TestSystem;
  let remote: ChildProcess | undefined;
  let remoteOutput = '';
  let remotePort: number;
  let onLocal: ContainerStarts;
  let onRemote: ContainerStarts;
  const localDocker = new Docker();
  const enginesDir = enginesFolder([
    // One job at a time per worker: while one host runs a job, the next one can only go to the other.
    { ...fileinfoManifest, name: SPREAD, concurrency: 1, cache: '0s' },
    {
      name: NAP, kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout',
      command: ['/bin/sh', '-c', 'sleep 8; echo rested'], timeout: '60s', concurrency: 1, retries: 2,
    },
  ]);

  const startRemote = () => {
    remoteOutput = '';
    // From a folder of its own, as a systemd unit or another host would run it; its own process group, so a kill reaches it all.
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'docket'), 'engines', `${SPREAD},${NAP}`], {
      cwd: mkdtempSync(join(tmpdir(), 'docket-remote-cwd-')),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: main.config.temporalAddress,
        DOCKET_QUEUE_PREFIX: main.config.DOCKET_QUEUE_PREFIX,
        DOCKET_ENGINES_DIR: enginesDir,
        DOCKET_DATA_DIR: main.dataDir,
        DOCKER_HOST: daemon!.host,
        DOCKET_ENGINES_PORT: String(remotePort),
        DOCKET_LOG_LEVEL: 'warn',
      },
    });
    const collect = (chunk: Buffer) => { remoteOutput = (remoteOutput + chunk.toString('utf8')).slice(-4000); };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    return child;
  };

  const remoteReady = () => poll(
    () => getJson(`http://127.0.0.1:${remotePort}/readyz`).catch(() => ({ status: 0, body: {} as Record<string, any> })),
    (answer) => answer.status === 200 || remote?.exitCode !== null,
    `the engines role on the second Docker host to be ready (its output: ${remoteOutput})`,
    120_000,
  );

  beforeAll(async () => {
    daemon = await OwnDockerd.start();
    await daemon.load(IMAGES);
    main = await startTestSystem({ enginesDir, engineWorkers: false });
    local = await startTestSystem({ shareWith: main, gateway: false, mainWorker: false, engineWorkers: true });
    onLocal = await ContainerStarts.watch(localDocker, [SPREAD, NAP]);
    onRemote = await ContainerStarts.watch(daemon.client, [SPREAD, NAP]);
    remotePort = await freePort();
    remote = startRemote();
    const ready = await remoteReady();
    if (ready.status !== 200) throw new Error(`the remote engines role did not start: ${remoteOutput}`);
  }, 300_000);

  afterAll(async () => {
    onLocal?.close();
    onRemote?.close();
    if (remote && remote.exitCode === null && remote.signalCode === null) process.kill(-remote.pid!, 'SIGKILL');
    // Each step runs even when one before it failed: a second dockerd left behind would outlive the run.
    const steps = [() => local?.close(), () => main?.close(), () => daemon?.stop()];
    const failures: string[] = [];
    for (const step of steps) await Promise.resolve().then(step).catch((error: Error) => failures.push(error.message));
    if (failures.length) throw new Error(`cleanup failed: ${failures.join('; ')}`);
  }, 120_000);

  it('serves readiness from each role: the remote role checks its own Docker engine', async () => {
    const { body } = await getJson(`http://127.0.0.1:${remotePort}/readyz`);
    expect(body).toMatchObject({ status: 'ready', role: 'engines', checks: { docker: { ok: true }, temporal: { ok: true }, workers: { ok: true } } });
    expect(body.checks.workers.message).toContain(`engine ${NAP}`);
  });

  it('spreads jobs over both Docker hosts, and each role counts the jobs it ran in its own metrics', async () => {
    const uploads = await Promise.all(Array.from({ length: 6 }, (_, index) => upload(main.baseUrl, SPREAD, `spread ${index} ${randomBytes(8).toString('hex')}`)));
    const ids = uploads.map(({ status, body }) => {
      expect(status).toBe(200);
      return String(body.jobid);
    });
    for (const id of ids) {
      const done = await poll(() => getJson(`${main.baseUrl}/result/${id}`), (r) => ['Success', 'Fail'].includes(r.body.status), `job ${id}`);
      expect(done.body.status).toBe('Success');
    }
    const ranLocally = ids.filter((id) => onLocal.count(id) > 0);
    const ranRemotely = ids.filter((id) => onRemote.count(id) > 0);
    expect(ranLocally.length).toBeGreaterThan(0);
    expect(ranRemotely.length).toBeGreaterThan(0);
    expect(ranLocally.length + ranRemotely.length).toBe(ids.length);

    const metrics = await fetch(`http://127.0.0.1:${remotePort}/metrics`).then((response) => response.text());
    expect(metrics).toContain(`docket_engine_jobs_total{engine="${SPREAD}",outcome="success"} ${ranRemotely.length}`);
    const gatewayMetrics = await fetch(`${main.baseUrl}/metrics`).then((response) => response.text());
    expect(gatewayMetrics).toContain('docket_http_requests_total');
    expect(gatewayMetrics).not.toContain('docket_engine_jobs_total');
  });

  it('finishes a job on the other host when the worker running it is killed mid-job', async () => {
    const start = (label: string) => main.client.workflow.start(WorkflowType.investigation, {
      taskQueue: `${main.config.DOCKET_QUEUE_PREFIX}docket`,
      workflowId: `two-hosts-${label}-${randomBytes(6).toString('hex')}`,
      args: [InvestigationInput.parse({ source: 'cli', observables: [{ type: 'other', data: `${label} ${randomBytes(4).toString('hex')}` }], engines: [NAP] })],
    });
    // Each worker takes one nap at a time, so two investigations put one container on each host.
    const handles = await Promise.all([start('first'), start('second')]);
    const ids = handles.map((handle) => handle.workflowId);
    await poll(async () => ids.map((id) => [onLocal.count(id), onRemote.count(id)]), (counts) => counts.every(([a, b]) => a + b === 1)
      && counts.some(([, b]) => b === 1), 'one nap container on each host', 60_000);
    const killed = ids.find((id) => onRemote.count(id) === 1)!;

    const exited = new Promise((resolve) => remote!.once('exit', resolve));
    process.kill(-remote!.pid!, 'SIGKILL');
    await exited;

    const reports = await Promise.all(handles.map((handle) => handle.result() as Promise<InvestigationReport>));
    for (const report of reports) expect(report.status).toBe('Success');
    const report = reports[ids.indexOf(killed)];
    expect(report.jobs[0]).toMatchObject({ engine: NAP, status: 'success', attempt: 2 });
    expect(onRemote.count(killed)).toBe(1);
    expect(onLocal.count(killed)).toBe(1);
  });
});
