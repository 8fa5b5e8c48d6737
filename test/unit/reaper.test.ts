import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { DockerRunner } from '../../activities/runners/docker';
import { ProcessRunner } from '../../activities/runners/process';
import { silentLogger } from '../../infra/log';
import { processAlive, reapOrphans } from '../../workers/reaper';
import { tempBlobStore } from '../helpers/engines';

describe('the reaper\'s idea of a live worker', () => {
  it('counts a running process as alive and a nonsense pid as dead', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(0)).toBe(false);
    expect(processAlive(Number.NaN)).toBe(false);
  });

  it('counts a finished process that nobody has reaped yet (a zombie) as dead', async () => {
    // The shell starts `true` in the background, prints its pid, then becomes `sleep`, which never
    // waits for children: `true` exits and stays a zombie until the sleep ends.
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const [chunk] = (await once(parent.stdout!, 'data')) as [Buffer];
    const zombie = Number(chunk.toString().trim());
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      expect(zombie).toBeGreaterThan(0);
      expect(processAlive(zombie)).toBe(false);
      expect(processAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('the reaper, through the engine runners', () => {
  const HOUR = 60 * 60_000;
  const alive = (pid: number) => pid === process.pid;

  /** A folder of process-runner job folders: one per owner pid given, plus one that is not Docket's. */
  function jobFolders(pids: number[]): string {
    const dir = mkdtempSync(join(tmpdir(), 'docket-reaper-'));
    for (const pid of pids) mkdirSync(join(dir, `docket-job-${pid}-nap-a1b2c3`));
    mkdirSync(join(dir, 'docket-blobs-a1b2c3'));
    return dir;
  }

  it('removes the job folders of process engines whose worker is gone, and keeps a live worker\'s and anything not Docket\'s', async () => {
    const dead = 999_999_999;
    const dir = jobFolders([dead, process.pid]);
    const runner = new ProcessRunner(await tempBlobStore(), true, dir);
    const reaped = await reapOrphans([runner], { maxAgeMs: HOUR, log: silentLogger, isAlive: alive });
    expect(reaped).toEqual({ containers: [], volumes: [], folders: [join(dir, `docket-job-${dead}-nap-a1b2c3`)] });
    expect(readdirSync(dir).sort()).toEqual(['docket-blobs-a1b2c3', `docket-job-${process.pid}-nap-a1b2c3`]);
  });

  it('removes a live worker\'s job folder once it is older than the longest a job may take', async () => {
    const dir = jobFolders([process.pid]);
    const old = new Date(Date.now() - 2 * HOUR);
    utimesSync(join(dir, `docket-job-${process.pid}-nap-a1b2c3`), old, old);
    await reapOrphans([new ProcessRunner(await tempBlobStore(), true, dir)], { maxAgeMs: HOUR, log: silentLogger, isAlive: alive });
    expect(readdirSync(dir)).toEqual(['docket-blobs-a1b2c3']);
  });

  it('still reaps through the other runners when one cannot be asked, then fails naming the one that could not', async () => {
    const dir = jobFolders([999_999_999]);
    const blobs = await tempBlobStore();
    const unreachable = new DockerRunner(new Docker({ socketPath: join(dir, 'no-docker.sock') }), blobs);
    const reaping = reapOrphans([unreachable, new ProcessRunner(blobs, true, dir)], { maxAgeMs: HOUR, log: silentLogger, isAlive: alive });
    await expect(reaping).rejects.toThrow(/^cannot reap through Docker: /);
    expect(readdirSync(dir)).toEqual(['docket-blobs-a1b2c3']);
  });
});
