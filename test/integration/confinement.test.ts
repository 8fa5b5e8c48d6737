import { join } from 'node:path';
import Docker from 'dockerode';
import type { BlobStore } from '../../infra/blob-store';
import { DockerRunner, HolderImageMissingError } from '../../activities/runners/docker';
import { HOLDER_ENGINE_LABEL, HOLDER_LABEL, JOB_VOLUME_MARGIN, jobVolumeSize } from '../../activities/runners/job-folder';
import { DockerUnavailableError, EngineTimeoutError, ImageMissingError } from '../../activities/errors';
import { prepareJob } from '../../activities/protocols';
import { ensureImage } from '../../scripts/lib/images';
import { docker, fileSubject, leftovers, leftoversGone, observableSubject, runEngineOnce, tempBlobStore, testManifest } from '../helpers/engines';
import { ROOT } from '../helpers/system';

/** Hostile engines in real containers: each misbehaviour is contained and reported clearly. */
const IMAGE = 'docket/test-hostile:1';
const hostile = (mode: string, fields: Record<string, unknown> = {}) =>
  testManifest({ name: `hostile-${mode}`, image: IMAGE, protocol: 'stdout', command: ['/hostile', mode], timeout: '60s', ...fields });

describe('engine confinement', () => {
  let blobs: BlobStore;
  beforeAll(async () => {
    // Rebuilt every time (Docker's cache makes it quick), so a tag built before a new mode was added never runs.
    await ensureImage(IMAGE, join(ROOT, 'test/engines/hostile'), { force: true });
    blobs = await tempBlobStore();
  });
  afterEach(async () => {
    // Removed after each job answers, in the background: given a bounded while.
    expect(await leftoversGone(hostileLeftovers)).toEqual({ containers: 0, volumes: 0 });
  });

  it('runs as nobody, without capabilities, network, setuid or a writable root, and cannot touch its input', async () => {
    const subject = await fileSubject(blobs, 'the evidence', 'evidence.txt');
    const { outcome } = await runEngineOnce(hostile('identity'), subject, blobs);
    expect(outcome.status).toBe('success');
    const text = (await blobs.read(outcome.result!.sha256)).toString();
    expect(text).toContain('uid=65534');
    expect(text).toContain('suid=65534');
    expect(text).toMatch(/CapEff:\s+0000000000000000/);
    expect(text).toMatch(/NoNewPrivs:\s+1/);
    expect(text).toContain('interfaces=lo ');
    expect(text).toContain('rootfs=read-only');
    expect(text).toContain('input=read-only');
    expect(text).toContain('tmp=writable');
  });

  it('kills an endless loop at its timeout and says so', async () => {
    const runner = new DockerRunner(docker, blobs);
    const manifest = hostile('loop', { timeout: '2s' });
    const job = prepareJob(manifest, { job: 'loop', subject: observableSubject('other', 'x'), tlp: 2, pap: 2 }, blobs);
    await expect(runner.run({ ...job, attempt: 1 })).rejects.toThrow(new EngineTimeoutError('hostile-loop', 2000));
  });

  it('holds a fork bomb to the pids limit', async () => {
    const { outcome } = await runEngineOnce(hostile('forkbomb', { limits: { pids: 32 } }), observableSubject('other', 'x'), blobs);
    const text = (await blobs.read(outcome.result!.sha256)).toString();
    const spawned = Number(/spawned: (\d+)/.exec(text)?.[1]);
    expect(spawned).toBeGreaterThan(5);
    expect(spawned).toBeLessThan(32);
  });

  it('reports an out-of-memory kill as such', async () => {
    const { outcome } = await runEngineOnce(hostile('memory', { limits: { memory: '64m' } }), observableSubject('other', 'x'), blobs);
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toBe('engine hostile-memory was killed: out of memory (limit 64.0 MiB)');
  });

  it('caps 1 GiB of stdout while streaming, with bounded worker memory', async () => {
    const before = process.memoryUsage().rss;
    const { outcome, run } = await runEngineOnce(hostile('flood', { limits: { output: '1m' } }), observableSubject('other', 'x'), blobs);
    const growth = process.memoryUsage().rss - before;
    expect(run.stdout).toMatchObject({ size: 1024 * 1024, truncated: true });
    expect(outcome.truncated).toBe(true);
    expect(growth).toBeLessThan(256 * 1024 * 1024);
  });

  it('caps a 1 GiB output file at the output limit and says so', async () => {
    const manifest = hostile('bigfile', { protocol: 'file', limits: { output: '1m' } });
    const { outcome } = await runEngineOnce(manifest, observableSubject('other', 'x'), blobs);
    expect(outcome.status).toBe('failure');
    expect(outcome.truncated).toBe(true);
    expect(outcome.errorMessage).toContain('wrote past its output limit of 1.0 MiB');
    expect(outcome.result?.size).toBeLessThanOrEqual(1024 * 1024);
  });

  it('stops five 60 MB output files at the job volume cap and reports the output as over its limit', async () => {
    const MiB = 1024 * 1024;
    const manifest = hostile('fill', { protocol: 'cortex', limits: { output: '4m', tmp: '8m' } });
    const subject = observableSubject('other', 'x');
    const cap = jobVolumeSize(prepareJob(manifest, { job: 'cap', subject, tlp: 2, pap: 2 }, blobs));
    const { outcome, run } = await runEngineOnce(manifest, subject, blobs);
    const said = (await blobs.read(run.stdout.sha256)).toString();

    expect(outcome.status).toBe('failure');
    expect(outcome.truncated).toBe(true);
    expect(outcome.errorMessage).toContain('wrote past its output limit of 4.0 MiB');
    expect(run.jobFolderFull).toBe(true);
    // The engine's own writes failed: every 60 MB file was cut short, in the job folder and in /tmp.
    expect(said).toMatch(/output big1: refused[\s\S]*output big5: refused/);
    expect(said).not.toContain(': written');
    const [jobUsed, jobSize] = numbers(said, 'job bytes');
    const [tmpUsed, tmpSize] = numbers(said, 'tmp bytes');
    // The input is two one-page files: input.json and the observable beside it.
    expect(cap).toBe(4 * MiB + JOB_VOLUME_MARGIN + 2 * 4096);
    expect(jobSize).toBe(cap);
    expect(jobUsed).toBeLessThanOrEqual(cap);
    expect(tmpSize).toBe(8 * MiB);
    expect(tmpUsed).toBeLessThanOrEqual(8 * MiB);
    const copiedOut = run.outputs.reduce((sum, output) => sum + output.blob.size, 0);
    expect(copiedOut).toBeLessThanOrEqual(4 * MiB);
  });

  it('bounds many small and empty output files by the job volume\'s space and inodes', async () => {
    const manifest = hostile('smallfiles', { protocol: 'cortex', limits: { output: '1m' } });
    const subject = observableSubject('other', 'x');
    const cap = jobVolumeSize(prepareJob(manifest, { job: 'cap', subject, tlp: 2, pap: 2 }, blobs));
    const { outcome, run } = await runEngineOnce(manifest, subject, blobs);
    const said = (await blobs.read(run.stdout.sha256)).toString();

    expect(outcome.errorMessage).toContain('wrote past its output limit of 1.0 MiB');
    expect(run.jobFolderFull).toBe(true);
    const [small] = numbers(said, 'small files');
    const [empty] = numbers(said, 'empty files');
    const [jobUsed] = numbers(said, 'job bytes');
    const [inodesUsed, inodes] = numbers(said, 'job inodes');
    // Each one-byte file takes a whole page, each empty one an inode: far fewer than the 200000 tried.
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThanOrEqual(cap / 4096);
    expect(jobUsed).toBeLessThanOrEqual(cap);
    expect(inodesUsed).toBe(inodes);
    expect(small + empty).toBeLessThan(inodes);
  });

  it('refuses a missing holder image with a message naming it, and leaves nothing behind', async () => {
    const runner = new DockerRunner(docker, blobs, { holderImage: 'docket/no-such-holder:0' });
    const job = prepareJob(hostile('identity'), { job: 'noholder', subject: observableSubject('other', 'x'), tlp: 2, pap: 2 }, blobs);
    const error = await runner.run({ ...job, attempt: 1 }).catch((e) => e);
    expect(error).toBeInstanceOf(HolderImageMissingError);
    expect(error).toBeInstanceOf(ImageMissingError);
    expect(error.message).toContain('docket/no-such-holder:0, which keeps the job folder of engine hostile-identity mounted');
    await runner.settled();
    expect(await leftovers('noholder')).toEqual({ containers: 0, volumes: 0 });
  });

  it('turns a garbage output.json into a failure that quotes it', async () => {
    const { outcome } = await runEngineOnce(hostile('garbage', { protocol: 'cortex' }), observableSubject('other', 'x'), blobs);
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toContain('wrote an output.json Docket cannot read');
    expect(outcome.errorMessage).toContain('this is {not json');
  });

  it('turns a missing output.json into a failure carrying the logs', async () => {
    const { outcome } = await runEngineOnce(hostile('nooutput', { protocol: 'cortex' }), observableSubject('other', 'x'), blobs);
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toContain('exited with code 3 without writing /job/output/output.json');
    expect(outcome.errorMessage).toContain('analyzer crashed before writing anything');
    expect(outcome.logs).toBeDefined();
  });

  it('reports an unreachable Docker daemon as a retryable fault that says what to check', async () => {
    const runner = new DockerRunner(new Docker({ socketPath: '/nonexistent/docker.sock' }), blobs);
    const job = prepareJob(hostile('identity'), { job: 'nodaemon', subject: observableSubject('other', 'x'), tlp: 2, pap: 2 }, blobs);
    const error = await runner.run({ ...job, attempt: 1 }).catch((e) => e);
    expect(error).toBeInstanceOf(DockerUnavailableError);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('Is the Docker daemon running (docker info)?');
  });

  it('refuses a missing image with a message naming it and the build command', async () => {
    const manifest = testManifest({ name: 'ghost', image: 'docket/ghost:0.0', protocol: 'stdout' });
    const error = await runEngineOnce(manifest, observableSubject('other', 'x'), blobs).catch((e) => e);
    expect(error).toBeInstanceOf(ImageMissingError);
    expect(error.message).toBe('image docket/ghost:0.0 for engine ghost not found on the Docker host: run npm run engines:build (or docker build the engine\'s folder)');
  });
});

/** The numbers on the line `<label>: …` the hostile engine printed. */
function numbers(text: string, label: string): number[] {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${label}:`));
  if (!line) throw new Error(`the engine printed no "${label}" line; it printed: ${text}`);
  return line.slice(label.length + 1).trim().split(/\s+/).map(Number);
}

/**
 * Engine containers, job folder holders and job volumes of this file's engines still on the Docker
 * host (other test files may be running theirs).
 */
async function hostileLeftovers(): Promise<{ containers: number; volumes: number }> {
  const ours = (labels: Record<string, string> | null | undefined, key: string) => (labels?.[key] ?? '').startsWith('hostile-');
  const engines = await docker.listContainers({ all: true, filters: { label: ['docket.job'] } });
  const holders = await docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL] } });
  const { Volumes } = await docker.listVolumes({ filters: { label: ['docket.job'] } });
  return {
    containers: engines.filter((info) => ours(info.Labels, 'docket.engine')).length + holders.filter((info) => ours(info.Labels, HOLDER_ENGINE_LABEL)).length,
    volumes: (Volumes ?? []).filter((volume) => ours(volume.Labels, 'docket.engine')).length,
  };
}
