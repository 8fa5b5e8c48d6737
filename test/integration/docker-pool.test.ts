import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { DockerRunner, type DockerStep, OWNER_ID, OWNER_LABEL, packInput } from '../../activities/runners/docker';
import {
  Holder, HOLDER_IMAGE, holderSpec, type HolderStream, JOB_VOLUME_MARGIN, jobVolumeSize, POOL_INPUT_BYTES, POOL_LABEL, pooledFolderSize, tmpfsOptions,
} from '../../activities/runners/job-folder';
import { createRunners } from '../../activities/runners';
import { loadConfig } from '../../core/config';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineJob, ReapScope } from '../../infra/engine-runner';
import { silentLogger } from '../../infra/log';
import { processAlive } from '../../workers/reaper';
import { docker, tempBlobStore } from '../helpers/engines';

/**
 * Warm job folders (DockerRunner's `pool`): a job whose input fits takes a folder whose holder already
 * runs, gets the same result as in a folder made for it, is reported over its output limit at the
 * same point, and leaves nothing behind; a dead holder's folder is never handed out.
 */
const MiB = 1024 * 1024;

/** A job of the holder image that prints its input file and its job folder's size (blocks × block size). */
function printJob(job: string, text: string, extra: Partial<EngineJob> = {}): EngineJob {
  const data = Buffer.from(text);
  return {
    engine: 'pool-print', image: HOLDER_IMAGE, job, attempt: 1, entrypoint: ['/bin/sh', '-c'],
    cmd: ['cat /job/input/data.txt; echo; stat -f -c "size %b %S" /job'], env: {}, mountpoint: '/job',
    input: [
      { name: 'input', type: 'directory', mode: 0o755 },
      { name: 'input/data.txt', type: 'file', mode: 0o444, size: data.length, open: () => Readable.from([data]) },
    ],
    network: 'none', timeoutMs: 60_000,
    limits: { memory: 64 * MiB, cpus: 0.5, pids: 16, output: MiB, tmp: MiB },
    ...extra,
  };
}

/** Records the Docker steps of each job through the runner's timing hook. */
function stepsOf(runner: DockerRunner): Map<string, Set<DockerStep>> {
  const steps = new Map<string, Set<DockerStep>>();
  runner.timing = (step, _ms, job) => {
    const set = steps.get(job) ?? new Set<DockerStep>();
    set.add(step);
    steps.set(job, set);
  };
  return steps;
}

/** Warm folders (holders and volumes) of `owner` on the Docker host, and whether each holder runs. */
async function poolOf(owner: string): Promise<{ holders: Array<{ id: string; slot: string; running: boolean }>; volumes: string[] }> {
  const containers = await docker.listContainers({ all: true, filters: { label: [POOL_LABEL, `${OWNER_LABEL}=${owner}`] } });
  const { Volumes } = await docker.listVolumes({ filters: { label: [POOL_LABEL, `${OWNER_LABEL}=${owner}`] } });
  return {
    holders: containers.map((info) => ({ id: info.Id, slot: info.Labels[POOL_LABEL], running: info.State === 'running' })),
    volumes: (Volumes ?? []).map((volume) => volume.Name),
  };
}

/** Everything this process labelled on the Docker host: jobs' containers, holders and volumes, and warm folders. */
async function ownLeftovers(): Promise<{ containers: number; volumes: number }> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=${OWNER_ID}`] } });
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${OWNER_LABEL}=${OWNER_ID}`] } });
  return { containers: containers.length, volumes: (Volumes ?? []).length };
}

/** Two ready folders of the shape `printJob` uses: one job run cold, then the pool fills. */
async function warmed(runner: DockerRunner): Promise<void> {
  await runner.run(printJob(`pool-warm-${randomBytes(4).toString('hex')}`, 'warm'));
  await runner.settled();
  const pool = await poolOf(OWNER_ID);
  expect(pool.holders.filter((holder) => holder.running)).toHaveLength(2);
}

describe('warm job folders', () => {
  let blobs: BlobStore;
  let runner: DockerRunner | undefined;
  beforeAll(async () => {
    blobs = await tempBlobStore();
  });
  afterEach(async () => {
    await runner?.close();
    runner = undefined;
    // Closing removed every warm folder and waited for every job's removals: nothing of this process is left.
    expect(await ownLeftovers()).toEqual({ containers: 0, volumes: 0 });
  });

  /** A runner (closed after the test) keeping one warm folder ready, made after a first job of printJob's shape; its steps, and that folder. */
  async function oneWarmFolder(first: string) {
    runner = new DockerRunner(docker, blobs, { pool: { ready: 1 } });
    const steps = stepsOf(runner);
    await runner.run(printJob(first, 'x'));
    await runner.settled();
    const [folder] = (await poolOf(OWNER_ID)).holders;
    return { warm: runner, steps, folder };
  }

  it('gives a job in a warm folder the same result as in a folder made for it, and takes one for the second job of a shape', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    const steps = stepsOf(runner);
    const cold = await runner.run(printJob('pool-first', 'the same input'));
    await runner.settled();
    const pooled = await runner.run(printJob('pool-second', 'the same input'));

    // The first job of a shape makes its own folder (no folder is made for a shape no job used); the second takes a warm one.
    expect([...steps.get('pool-first')!]).toEqual(expect.arrayContaining(['pool take', 'volume', 'holder create', 'holder start']));
    expect([...steps.get('pool-second')!]).toEqual(expect.arrayContaining(['pool take', 'put input', 'start']));
    expect([...steps.get('pool-second')!]).not.toContain('archive in');
    expect([...steps.get('pool-second')!]).not.toEqual(expect.arrayContaining(['volume']));
    expect([...steps.get('pool-second')!]).not.toEqual(expect.arrayContaining(['holder create']));
    const [coldText, pooledText] = await Promise.all([cold, pooled].map(async (run) => (await blobs.read(run.stdout.sha256)).toString()));
    expect(cold).toMatchObject({ exitCode: 0, jobFolderFull: false, truncated: false });
    expect(pooled).toMatchObject({ exitCode: 0, jobFolderFull: false, truncated: false });
    expect(coldText.split('\n')[0]).toBe('the same input');
    expect(pooledText.split('\n')[0]).toBe('the same input');
    // Each folder's tmpfs cap: the job's own for the cold one, the input allowance's for the warm one.
    const size = (text: string) => { const [, blocks, block] = /size (\d+) (\d+)/.exec(text)!; return Number(blocks) * Number(block); };
    const job = printJob('cap', 'the same input');
    expect(size(coldText)).toBe(jobVolumeSize(job));
    expect(size(pooledText)).toBe(pooledFolderSize(job));
    expect(pooledFolderSize(job)).toBe(POOL_INPUT_BYTES + MiB + JOB_VOLUME_MARGIN);

    // The used folder was emptied after the job answered and came back beside the two made meanwhile: three ready, all running, nothing else.
    await runner.settled();
    expect([...steps.get('pool-second')!]).toContain('clean folder');
    const pool = await poolOf(OWNER_ID);
    expect(pool.holders).toHaveLength(3);
    expect(pool.holders.every((holder) => holder.running)).toBe(true);
    expect(pool.volumes.sort()).toEqual(pool.holders.map((holder) => holder.slot).sort());
    const jobs = await docker.listContainers({ all: true, filters: { label: ['docket.job=pool-second'] } });
    expect(jobs).toHaveLength(0);
  });

  it('never hands out a folder whose holder was killed or does not answer: the job gets a folder of its own and succeeds', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    const steps = stepsOf(runner);
    await warmed(runner);
    const [killed, frozen] = (await poolOf(OWNER_ID)).holders;
    await docker.getContainer(killed.id).kill();
    await docker.getContainer(frozen.id).pause();
    try {
      const run = await runner.run(printJob('pool-dead', 'after the holders died'));
      expect(run.exitCode).toBe(0);
      expect((await blobs.read(run.stdout.sha256)).toString()).toContain('after the holders died');
      // Neither warm folder was used: this job made its own.
      expect([...steps.get('pool-dead')!]).toEqual(expect.arrayContaining(['pool take', 'volume', 'holder create']));
    } finally {
      await docker.getContainer(frozen.id).unpause().catch(() => undefined);
    }
    await runner.settled();
    const pool = await poolOf(OWNER_ID);
    expect(pool.holders.map((holder) => holder.id)).not.toContain(killed.id);
    expect(pool.holders.map((holder) => holder.id)).not.toContain(frozen.id);
    expect(pool.holders.every((holder) => holder.running)).toBe(true);
  });

  it('reports a job over its output limit in a warm folder as in its own one, though the warm folder has room left', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    await warmed(runner);
    // Three 800 KiB files: past the job's own cap (input + 1 MiB output + 1 MiB margin), within the warm folder's (+ the 1 MiB allowance).
    const write = 'for n in 1 2 3; do head -c 819200 /dev/zero > /job/output/$n || echo refused $n; done; stat -f -c "free %f %S" /job';
    const over = printJob('pool-over', 'x', { cmd: [`mkdir -p /job/output && ${write}`] });
    over.input.push({ name: 'output', type: 'directory', mode: 0o777 });
    const overRun = await runner.run(over);
    const said = (await blobs.read(overRun.stdout.sha256)).toString();
    expect(said).not.toContain('refused');
    const [, freeBlocks, block] = /free (\d+) (\d+)/.exec(said)!;
    expect(Number(freeBlocks) * Number(block)).toBeGreaterThan(0);
    expect(overRun.jobFolderFull).toBe(true);
    expect(overRun.truncated).toBe(true);

    // Two such files stay within the job's own cap: not reported.
    await runner.settled();
    const within = printJob('pool-within', 'x', { cmd: ['for n in 1 2; do head -c 819200 /dev/zero > /job/output/$n; done'] });
    within.input.push({ name: 'output', type: 'directory', mode: 0o777 });
    const withinRun = await runner.run(within);
    expect(withinRun).toMatchObject({ exitCode: 0, jobFolderFull: false });
  });

  it('copies the same output out of a warm folder, through its holder, as out of a folder made for the job', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    const steps = stepsOf(runner);
    // Nested files, one its engine (another user) made unreadable, an empty one, a symlink and a fifo (not copied), and more than the output limit in all.
    const write = [
      'mkdir -p /job/output/a/b && echo nested > /job/output/a/b/deep.txt && echo secret > /job/output/locked && chmod 000 /job/output/locked',
      ': > /job/output/empty && ln -s /etc/passwd /job/output/link && mkfifo /job/output/fifo && head -c 700000 /dev/urandom > /job/output/a/big',
      'head -c 500000 /dev/zero > /job/output/z-past-the-limit',
    ].join(' && ');
    const outputJob = (name: string) => {
      const job = printJob(name, 'x', { cmd: [write], user: '4321:4321', outputPath: 'output' });
      job.input.push({ name: 'output', type: 'directory', mode: 0o777 });
      return job;
    };
    const summary = async (run: Awaited<ReturnType<DockerRunner['run']>>) => ({
      truncated: run.truncated,
      files: await Promise.all(run.outputs.map(async (file) => [file.path, file.blob.size, (await blobs.read(file.blob.sha256)).subarray(0, 16).toString('hex')])),
    });
    const cold = await runner.run(outputJob('pool-out-cold'));
    await runner.settled();
    const warm = await runner.run(outputJob('pool-out-warm'));
    expect([...steps.get('pool-out-cold')!]).toContain('archive out');
    expect([...steps.get('pool-out-warm')!]).toContain('get output');
    expect([...steps.get('pool-out-warm')!]).not.toContain('archive out');
    const [coldFiles, warmFiles] = [await summary(cold), await summary(warm)];
    const paths = warmFiles.files.map(([path]) => path).sort();
    expect(paths).toEqual(['a/b/deep.txt', 'a/big', 'empty', 'locked', 'z-past-the-limit']);
    expect(warmFiles.truncated).toBe(true);
    // The same files, sizes and (but for the random one) first bytes, the 1 MiB limit cutting the same files.
    const byPath = (files: typeof warmFiles.files) => Object.fromEntries(files.map(([path, size, head]) => [path, path === 'a/big' ? size : `${size} ${head}`]));
    expect(byPath(warmFiles.files)).toEqual(byPath(coldFiles.files));
    expect(warmFiles.files.reduce((sum, [, size]) => sum + Number(size), 0)).toBeLessThanOrEqual(MiB);
    expect(byPath(warmFiles.files)['a/b/deep.txt']).toBe(`7 ${Buffer.from('nested\n').toString('hex')}`);

    // A job whose output path is missing copies nothing out, as from its own folder.
    await runner.settled();
    const none = printJob('pool-out-none', 'x', { cmd: ['true'], outputPath: 'output' });
    const noneRun = await runner.run(none);
    expect(noneRun.outputs).toEqual([]);
    expect([...steps.get('pool-out-none')!]).toContain('get output');
  });

  it('empties a used folder of whatever its engine left, however it set it, and gives the next jobs the folder as it was made', async () => {
    const { warm, steps, folder: made } = await oneWarmFolder('pool-reuse-first');
    // An engine of another user leaves a folder it locked, a sticky folder, hidden files, a symlink, a fifo and a file filling pages.
    const mess = [
      'mkdir -p /job/output/locked/deeper && echo secret > /job/output/locked/deeper/file && chmod 000 /job/output/locked/deeper /job/output/locked',
      'mkdir /job/output/sticky && chmod 1777 /job/output/sticky && echo hidden > /job/output/sticky/.hidden && echo dot > /job/output/.dot',
      'ln -s / /job/output/root && mkfifo /job/output/fifo && head -c 300000 /dev/zero > /job/output/pages && ls -A /job/output | wc -l',
    ].join(' && ');
    const messy = printJob('pool-reuse-messy', 'x', { cmd: [mess], user: '4321:4321' });
    messy.input.push({ name: 'output', type: 'directory', mode: 0o777 });
    const messyRun = await warm.run(messy);
    expect((await blobs.read(messyRun.stdout.sha256)).toString().trim().split('\n').at(-1)).toBe('6');
    expect([...steps.get('pool-reuse-messy')!]).not.toContain('volume');
    await warm.settled();
    // The folder it used came back (its holder still runs, nothing was removed) beside the one made when it was taken.
    const after = (await poolOf(OWNER_ID)).holders;
    expect(after.map((holder) => holder.id)).toContain(made.id);
    expect(after).toHaveLength(2);
    expect(after.every((holder) => holder.running)).toBe(true);

    // Two jobs at once take both ready folders, the used one among them: each sees its own input only, in a root of mode 755,
    // put in by the holder as root with the archive's modes, so the engine cannot change it.
    const look = ['pool-reuse-a', 'pool-reuse-b'].map((name) => printJob(name, name, {
      cmd: ['find /job -mindepth 1 -printf "%p %u %m\\n" | sort; stat -c "mode %a %u" /job; stat -f -c "used %b %f" /job; echo x >> /job/input/data.txt || echo refused'],
    }));
    const runs = await Promise.all(look.map((job) => warm.run(job)));
    for (const [index, run] of runs.entries()) {
      const said = (await blobs.read(run.stdout.sha256)).toString().trim().split('\n');
      expect(said.slice(0, 3)).toEqual(['/job/input root 755', '/job/input/data.txt root 444', 'mode 755 0']);
      expect(said.at(-1)).toBe('refused');
      // Of the folder's pages only the input's one is taken.
      const [, blocks, free] = /used (\d+) (\d+)/.exec(said[3])!;
      expect(Number(blocks) - Number(free)).toBe(1);
      expect([...steps.get(look[index].job)!]).not.toContain('volume');
    }
  });

  it('removes a used folder instead of giving it back when its engine ran as root, or when it did not come back empty', async () => {
    const { warm, folder: rootFolder } = await oneWarmFolder('pool-root-first');
    // An engine run as root owns the folder's root: its folder is not used again.
    await warm.run(printJob('pool-root', 'x', { cmd: ['touch /job/mine'], user: '0:0' }));
    await warm.settled();
    expect((await poolOf(OWNER_ID)).holders.map((holder) => holder.id)).not.toContain(rootFolder.id);

    // Another container holds a file of the folder open while the job runs: emptying cannot give its pages back.
    const [held] = (await poolOf(OWNER_ID)).holders;
    const waiting = printJob('pool-held', 'x', { cmd: ['while [ ! -e /job/output/go ]; do sleep 0.1; done'] });
    waiting.input.push({ name: 'output', type: 'directory', mode: 0o777 });
    const running = warm.run(waiting);
    let other: Awaited<ReturnType<typeof docker.createContainer>> | undefined;
    try {
      other = await docker.createContainer({
        Image: HOLDER_IMAGE, Entrypoint: ['/bin/sh', '-c', 'head -c 65536 /dev/zero > /job/held && exec 3</job/held && touch /job/output/go && sleep 300'],
        HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: held.slot, Target: '/job' }] },
      });
      await other.start();
      expect((await running).exitCode).toBe(0);
      await warm.settled();
      expect((await poolOf(OWNER_ID)).holders.map((holder) => holder.id)).not.toContain(held.id);
    } finally {
      await other?.remove({ force: true });
      // Its volume was still in use when the runner tried to remove it: the reaper's, here the test's.
      await docker.getVolume(held.slot).remove().catch(() => undefined);
    }
  });

  it('fails a job whose input the holder cannot unpack, saying so, and still gives the folder back emptied', async () => {
    const { warm, steps, folder } = await oneWarmFolder('pool-put-first');
    // tar refuses a member that climbs out of the folder; whatever it unpacked before goes with the emptying.
    const climbing = printJob('pool-put-bad', 'x');
    climbing.input.push({ name: '../outside', type: 'file', mode: 0o444, size: 1, open: () => Readable.from([Buffer.from('x')]) });
    await expect(warm.run(climbing)).rejects.toThrow(/could not unpack the input \(tar exited with 2\)/);
    expect([...steps.get('pool-put-bad')!]).not.toContain('start');
    await warm.settled();
    // Back in the pool: emptied, and shown as empty as when made.
    expect((await poolOf(OWNER_ID)).holders.map((holder) => holder.id)).toContain(folder.id);
  });

  it('keeps a warm holder answering in turn whatever of an archive tar leaves unread, or cannot unpack', async () => {
    const volume = `docket-test-holder-${randomBytes(4).toString('hex')}`;
    await docker.createVolume({ Name: volume, Driver: 'local', DriverOpts: tmpfsOptions(4 * MiB, 1024) });
    const container = await docker.createContainer(holderSpec(HOLDER_IMAGE, '/job', volume, {}, true));
    const holder = new Holder(container, await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }) as HolderStream);
    try {
      await container.start();
      const fresh = await holder.figures();
      const lines = Buffer.from('x\n'.repeat(32 * 1024));
      // tar stops reading at the archive's end: the lines after it must not be taken for questions.
      const archive = await buffer(await packInput([{ name: 'note.txt', type: 'file', mode: 0o444, size: 2, open: () => Readable.from([Buffer.from('hi')]) }]));
      await holder.put(Buffer.concat([archive, lines]));
      expect(await holder.figures()).not.toBe(fresh);
      expect(await holder.clean(fresh)).toBe(true);
      // Not an archive at all: refused, and the holder still answers in turn.
      await expect(holder.put(lines)).rejects.toThrow(/could not unpack the input \(tar exited with 2\)/);
      expect(await holder.clean(fresh)).toBe(true);
      expect(await holder.figures()).toBe(fresh);
    } finally {
      holder.close();
      await container.remove({ force: true });
      await docker.getVolume(volume).remove();
    }
  });

  it('takes the cold path for an input over the allowance', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    const steps = stepsOf(runner);
    await warmed(runner);
    const big = printJob('pool-big', 'x'.repeat(POOL_INPUT_BYTES + 1));
    const run = await runner.run(big);
    expect(run.exitCode).toBe(0);
    expect([...steps.get('pool-big')!]).toEqual(expect.arrayContaining(['volume', 'holder create']));
    expect([...steps.get('pool-big')!]).not.toContain('pool take');
  });

  it('keeps this live process\'s warm folders from the reaper, and lets it remove a dead owner\'s and this process\'s unheld ones', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    await warmed(runner);
    const live = await poolOf(OWNER_ID);
    // A worker that died (its pid is gone) left a warm folder; this process left one it no longer holds.
    const exited = spawnSync('true');
    const deadOwner = `${hostname()}:${exited.pid}`;
    expect(processAlive(exited.pid!)).toBe(false);
    const dead = await makeFakeSlot(deadOwner);
    const unheld = await makeFakeSlot(OWNER_ID);

    // The reaper's rule (workers/reaper.ts) for these owners only: other processes share this Docker host.
    const scope: ReapScope = {
      log: silentLogger,
      orphaned(owner, _created, heldHere) {
        if (owner === OWNER_ID) return heldHere === false;
        if (owner === deadOwner) return !processAlive(exited.pid!);
        return false;
      },
    };
    const reaped = await runner.reap(scope);

    expect(reaped.containers.sort()).toEqual([dead.container, unheld.container].sort());
    expect(reaped.volumes.sort()).toEqual([dead.volume, unheld.volume].sort());
    const ids = (pool: typeof live) => pool.holders.map((holder) => holder.id).sort();
    expect(ids(await poolOf(OWNER_ID))).toEqual(ids(live));
    expect((await poolOf(OWNER_ID)).volumes.sort()).toEqual(live.volumes.sort());
    expect((await poolOf(deadOwner)).volumes).toEqual([]);
  });

  it('keeps as many warm folders per shape as DOCKET_WARM_FOLDERS says, and none at 0', async () => {
    const built = (value: string) => {
      const config = loadConfig({ DOCKET_WARM_FOLDERS: value });
      return createRunners({ docker, blobs, log: silentLogger, processRunner: false, warmFolders: config.DOCKET_WARM_FOLDERS }).find('docker') as DockerRunner;
    };
    runner = built('0');
    const steps = stepsOf(runner);
    await runner.run(printJob('pool-off-first', 'x'));
    await runner.settled();
    await runner.run(printJob('pool-off-second', 'x'));
    await runner.settled();
    expect((await poolOf(OWNER_ID)).holders).toEqual([]);
    expect([...steps.get('pool-off-second')!]).toEqual(expect.arrayContaining(['volume', 'holder create']));
    expect([...steps.get('pool-off-second')!]).not.toContain('pool take');
    await runner.close();

    runner = built('3');
    await runner.run(printJob('pool-three', 'x'));
    await runner.settled();
    expect((await poolOf(OWNER_ID)).holders.filter((holder) => holder.running)).toHaveLength(3);
    for (const refused of ['-1', '17', '1.5', 'two']) expect(() => loadConfig({ DOCKET_WARM_FOLDERS: refused })).toThrow(/DOCKET_WARM_FOLDERS/);
  });

  it('removes every warm folder and finishes every removal when the runner closes', async () => {
    runner = new DockerRunner(docker, blobs, { pool: {} });
    await warmed(runner);
    // A job answers before its containers and volume are removed; closing waits for those removals too.
    await runner.run(printJob('pool-closing', 'last job'));
    await runner.close();
    expect(await ownLeftovers()).toEqual({ containers: 0, volumes: 0 });
    // A closed runner still runs jobs, each in a folder of its own, and makes no more warm ones.
    const after = await runner.run(printJob('pool-after-close', 'still runs'));
    expect(after.exitCode).toBe(0);
    await runner.settled();
    expect(await ownLeftovers()).toEqual({ containers: 0, volumes: 0 });
  });
});

/** A stopped holder and its volume, labelled as a warm folder of `owner`. */
async function makeFakeSlot(owner: string): Promise<{ container: string; volume: string }> {
  const name = `docket-pool-${randomBytes(6).toString('hex')}`;
  const labels = { [POOL_LABEL]: name, [OWNER_LABEL]: owner };
  await docker.createVolume({ Name: name, Labels: labels });
  const container = await docker.createContainer({
    Image: HOLDER_IMAGE, Cmd: ['true'], Labels: labels,
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: name, Target: '/job' }] },
  });
  return { container: container.id, volume: name };
}
