import { randomBytes } from 'node:crypto';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import { WorkflowType } from '../../contract/messages';
import { DockerRunner, holdJob, OWNER_ID, OWNER_LABEL } from '../../activities/runners/docker';
import { HOLDER_IMAGE, POOL_LABEL } from '../../activities/runners/job-folder';
import { DockerUnavailableError } from '../../activities/errors';
import type { EngineJob } from '../../infra/engine-runner';
import { createLogger, silentLogger } from '../../infra/log';
import { reapOrphans } from '../../workers/reaper';
import { tempBlobStore } from '../helpers/engines';
import { enginesFolder } from '../helpers/fixtures';
import { OwnDockerd } from '../helpers/own-dockerd';
import { poll, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * dockerd killed with SIGKILL in the middle of a job, then started again: the job's removals failed
 * while the daemon was down, and its worker (this process) lives on, so only the reaper's knowledge of
 * which jobs still run here can tell its leftovers from a running job's. The daemon is one of the
 * test's own, in a network namespace of its own (test/helpers/own-dockerd.ts).
 */
const NAP = 'nap';
const HOUR = 60 * 60_000;

/**
 * Every docket.*-labelled container and volume on `daemon`; with `warm: 'ignore'`, but for the warm
 * job folders ready to use (a running holder and its volume) of a runner still open.
 */
async function docketLeftovers(daemon: OwnDockerd, warm: 'count' | 'ignore' = 'count'): Promise<{ containers: string[]; volumes: string[] }> {
  const labelled = (labels: Record<string, string> | null | undefined) => Object.keys(labels ?? {}).some((key) => key.startsWith('docket.'));
  let containers = (await daemon.client.listContainers({ all: true })).filter((one) => labelled(one.Labels));
  let volumes = ((await daemon.client.listVolumes()).Volumes ?? []).filter((one) => labelled(one.Labels));
  if (warm === 'ignore') {
    const ready = new Set(containers.filter((one) => one.Labels[POOL_LABEL] && one.State === 'running').map((one) => one.Labels[POOL_LABEL]));
    containers = containers.filter((one) => !ready.has(one.Labels[POOL_LABEL]));
    volumes = volumes.filter((one) => !ready.has(one.Labels?.[POOL_LABEL] ?? ''));
  }
  return { containers: containers.map((one) => one.Id), volumes: volumes.map((one) => one.Name) };
}

/** A job of the holder image that sleeps, run straight through a runner (no Temporal). */
function napJob(job: string, seconds: number): EngineJob {
  return {
    engine: NAP, image: HOLDER_IMAGE, job, attempt: 1, entrypoint: ['/bin/sh', '-c'], cmd: [`sleep ${seconds}; echo rested`], env: {},
    mountpoint: '/job', input: [], network: 'none', timeoutMs: 120_000,
    limits: { memory: 64 * 1024 * 1024, cpus: 0.5, pids: 16, output: 1024 * 1024, tmp: 1024 * 1024 },
  };
}

describe('after dockerd is killed mid-job and comes back', () => {
  let daemon: OwnDockerd | undefined;

  beforeAll(async () => {
    daemon = await OwnDockerd.start();
    await daemon.load([HOLDER_IMAGE]);
  }, 300_000);

  afterAll(async () => {
    await daemon?.stop();
  }, 120_000);

  it('reaps this worker\'s own leftovers that no running job holds, and leaves a running job\'s containers alone', async () => {
    const docker = daemon!.client;
    const runner = new DockerRunner(docker, await tempBlobStore());
    const running = `restart-running-${randomBytes(4).toString('hex')}`;
    const run = runner.run(napJob(running, 4));
    await poll(() => docker.listContainers({ filters: { label: [`docket.job=${running}`] } }), (list) => list.length === 1, 'the nap container to run', 60_000);
    // What a job whose removals failed leaves: a volume of this process whose job no longer runs here.
    const labels = { 'docket.job': `restart-gone-${randomBytes(4).toString('hex')}`, 'docket.engine': NAP, 'docket.attempt': '1', [OWNER_LABEL]: OWNER_ID };
    const left = await docker.createVolume({ Name: `docket-nap-${randomBytes(6).toString('hex')}`, Labels: labels });
    // One held under another attempt's key is a running job's: kept.
    const release = holdJob({ ...labels, 'docket.attempt': '2' });
    const held = await docker.createVolume({ Name: `docket-nap-${randomBytes(6).toString('hex')}`, Labels: { ...labels, 'docket.attempt': '2' } });

    const reaped = await reapOrphans([runner], { maxAgeMs: HOUR, log: silentLogger });

    expect(reaped).toEqual({ containers: [], volumes: [left.name], folders: [] });
    const finished = await run;
    expect(finished.exitCode).toBe(0);
    release();
    await docker.getVolume(held.name).remove();
    // The job's own removals run after it answered.
    await runner.settled();
    expect(await docketLeftovers(daemon!)).toEqual({ containers: [], volumes: [] });
  });

  it('ends a job as Docker being unavailable, not hanging, when dockerd is killed under it, and reaps what the job could not remove', async () => {
    const docker = daemon!.client;
    const runner = new DockerRunner(docker, await tempBlobStore());
    const job = `restart-quick-${randomBytes(4).toString('hex')}`;
    const run = runner.run(napJob(job, 60));
    run.catch(() => undefined);
    await poll(() => docker.listContainers({ filters: { label: [`docket.job=${job}`] } }), (list) => list.length === 1, 'the nap container to run', 60_000);

    await daemon!.kill();
    // A dockerd started again at once fails to take over its containerd while that is still going down.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await daemon!.restart();

    // Without a watch on it, the wait for the container never settles: its connection died without an error.
    await expect(run).rejects.toBeInstanceOf(DockerUnavailableError);
    // The job's removals run after it answered; whatever they could not remove is the reaper's.
    await runner.settled();
    expect(runner.reapDue()).toBe(true);
    await reapOrphans([runner], { maxAgeMs: HOUR, log: silentLogger });
    expect(await docketLeftovers(daemon!)).toEqual({ containers: [], volumes: [] });
    expect(runner.reapDue()).toBe(false);
  }, 180_000);

  describe('with Docket running its engine jobs on that dockerd', () => {
    let system: TestSystem | undefined;
    const lines: string[] = [];
    const enginesDir = enginesFolder([{
      name: NAP, kind: 'analyzer', image: HOLDER_IMAGE, accepts: ['other'], protocol: 'stdout',
      command: ['/bin/sh', '-c', 'sleep 6; echo rested'], timeout: '120s', concurrency: 1, retries: 5, cache: '0s',
    }]);

    beforeAll(async () => {
      system = await startTestSystem({
        enginesDir,
        env: { DOCKER_HOST: daemon!.host },
        log: createLogger('info', (line) => lines.push(line)),
      });
    }, 300_000);

    afterAll(async () => {
      await system?.close();
    }, 120_000);

    it('fails the running attempt retryably, completes the job on a later one, and leaves no container or volume behind', async () => {
      const docker = daemon!.client;
      const handle = await system!.client.workflow.start(WorkflowType.investigation, {
        taskQueue: `${system!.config.DOCKET_QUEUE_PREFIX}docket`,
        workflowId: `docker-restart-${randomBytes(6).toString('hex')}`,
        args: [InvestigationInput.parse({ source: 'cli', observables: [{ type: 'other', data: `nap ${randomBytes(4).toString('hex')}` }], engines: [NAP] })],
      });
      const job = handle.workflowId;
      await poll(() => docker.listContainers({ filters: { label: [`docket.job=${job}`] } }), (list) => list.length === 1, 'the nap container to run', 60_000);

      await daemon!.kill();
      // The attempt ends while dockerd is down, so none of its removals can work: its containers and volume stay.
      await poll(async () => lines.some((line) => line.includes(`job ${job}`) && line.includes('Docker failed while')), (failed) => failed, 'the running attempt to fail', 60_000);
      await daemon!.restart();

      const report = await handle.result() as InvestigationReport;
      expect(report.status).toBe('Success');
      expect(report.jobs[0]).toMatchObject({ engine: NAP, status: 'success' });
      // The attempt dockerd's death cut short failed as Docker being unavailable, which the retry policy retried.
      expect(report.jobs[0].attempt).toBeGreaterThan(1);

      // Warm job folders made after dockerd came back are ready for the next job; those it took down with it are leftovers.
      const left = await poll(() => docketLeftovers(daemon!, 'ignore'), (now) => !now.containers.length && !now.volumes.length, 'the reaper to remove the cut-short attempt\'s leftovers', 90_000);
      expect(left).toEqual({ containers: [], volumes: [] });
      // Something was left, and the reaper of this (live) worker is what removed it.
      expect(lines.filter((line) => line.includes('reaper: removed') && line.includes(job)).length).toBeGreaterThan(0);
      // A graceful stop removes the warm folders too: nothing at all is left.
      await system!.close();
      system = undefined;
      expect(await docketLeftovers(daemon!)).toEqual({ containers: [], volumes: [] });
    }, 300_000);
  });
});
