import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { once } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type Docker from 'dockerode';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import type { EngineManifest } from '../../core/engine-manifest';
import type { BlobStore } from '../../infra/blob-store';
import {
  type EngineJob, type EngineRun, type EngineRunner, type InputEntry, OutputCollector, type OutputFile, type Reaped, type ReapScope,
} from '../../infra/engine-runner';
import { type Logger, silentLogger } from '../../infra/log';
import { DEFAULT_EGRESS_NETWORK, type EgressNetwork, ensureEgressNetwork } from './docker-egress';
import { DockerUnavailableError, EngineTimeoutError, ImageMissingError, isTransientDockerError } from '../errors';

/** The user engines run as when their manifest names none: `nobody`. */
export const DEFAULT_ENGINE_USER = '65534:65534';
export const OWNER_LABEL = 'docket.owner';
/**
 * A holder container (it keeps a job volume mounted) carries its job and engine under labels of its
 * own, so that whatever counts a job's or an engine's containers by `docket.job`/`docket.engine`
 * still counts engine containers only; the reaper looks for both.
 */
export const HOLDER_LABEL = 'docket.holder';
export const HOLDER_ENGINE_LABEL = 'docket.holder.engine';
export const HOLDER_IMAGE = 'docket/base:bookworm';
const HEARTBEAT_MS = 5_000;
const PAGE = 4096;
/**
 * Room in the job volume beyond the input and the output limit: tmpfs counts whole pages, so a
 * few hundred small output files take more than their bytes. Past it the engine gets ENOSPC.
 */
export const JOB_VOLUME_MARGIN = 1024 * 1024;
/** Inodes beyond the input's and one per page of output: bounds empty files, which take no pages. */
const SPARE_INODES = 1024;

/** This process's identity on the Docker host, so the reaper can tell live owners from dead ones. */
export const OWNER_ID = `${hostname()}:${process.pid}`;

export interface DockerRunnerOptions {
  /** The Docker network `network: egress` containers join (DOCKET_EGRESS_NETWORK). */
  egressNetwork?: string;
  /** Where the egress network's confinement (or the lack of it) is reported. */
  log?: Logger;
  /** The image of the container that keeps each job volume mounted while the job runs. */
  holderImage?: string;
  /** Told how long each Docker API call of a job took (bench/latency.ts); off unless given. */
  timing?: DockerTiming;
}

/** One Docker API call of a job: which step (`volume`, `create`, `wait`…), for which job, and its duration. */
export type DockerTiming = (step: DockerStep, ms: number, job: string) => void;
export type DockerStep =
  | 'image' | 'volume' | 'holder create' | 'holder start' | 'archive in' | 'create' | 'attach' | 'start' | 'wait' | 'inspect'
  | 'measure folder' | 'archive out' | 'remove containers' | 'remove volume';

/** The holder image is missing: nothing to retry until the base image is built. */
export class HolderImageMissingError extends ImageMissingError {
  constructor(image: string, engine: string) {
    super(image, engine);
    this.message = `image ${image}, which keeps the job folder of engine ${engine} mounted, is not on the Docker host: build it with scripts/provision.sh base`;
  }
}

/**
 * Runs each job in a hardened container on the Docker host `docker` talks to (local or DOCKER_HOST):
 * no network unless `network: egress`, a read-only root, every capability dropped, a size-capped job
 * folder, and nothing left behind.
 */
export class DockerRunner implements EngineRunner {
  readonly kind = 'docker' as const;
  readonly title = 'Docker';
  private readonly egressNetwork: string;
  private readonly log: Logger;
  private readonly holderImage: string;
  private egress?: Promise<EgressNetwork>;
  /** Public so that a benchmark can turn it on in a system already started; see DockerRunnerOptions. */
  timing?: DockerTiming;

  constructor(private readonly docker: Docker, private readonly blobs: BlobStore, options: DockerRunnerOptions = {}) {
    this.egressNetwork = options.egressNetwork ?? DEFAULT_EGRESS_NETWORK;
    this.log = options.log ?? silentLogger;
    this.holderImage = options.holderImage ?? HOLDER_IMAGE;
    this.timing = options.timing;
  }

  /** Runs one Docker call, telling the timing hook its duration when there is one. */
  private async timed<T>(step: DockerStep, job: string, fn: () => Promise<T>): Promise<T> {
    const hook = this.timing;
    if (!hook) return fn();
    const started = performance.now();
    try {
      return await fn();
    } finally {
      hook(step, performance.now() - started, job);
    }
  }

  /**
   * The network egress engines join, created and confined on first use (once per runner); a failure
   * is not remembered, so the next egress job tries again.
   */
  ensureEgress(): Promise<EgressNetwork> {
    this.egress ??= ensureEgressNetwork(this.docker, this.egressNetwork, this.log).catch((error) => {
      this.egress = undefined;
      throw wrapDockerError(error, `preparing the egress network ${this.egressNetwork}`);
    });
    return this.egress;
  }

  /** Creates and confines the egress network when one of these engines opts into egress. */
  async prepare(manifests: EngineManifest[]): Promise<void> {
    if (manifests.some((manifest) => manifest.network === 'egress')) await this.ensureEgress();
  }

  identify(manifest: EngineManifest): Promise<string | undefined> {
    return this.imageId(manifest.image);
  }

  async health(): Promise<string> {
    await this.docker.ping();
    return 'Docker answers';
  }

  /**
   * Removes engine containers, job folder holders and job volumes whose owner `scope` calls orphaned.
   * Holders keep job volumes (tmpfs) mounted, so they go with the engine containers, before the volumes.
   */
  async reap(scope: ReapScope): Promise<Reaped> {
    const reaped: Reaped = { containers: [], volumes: [], folders: [] };
    const containers = [
      ...(await this.docker.listContainers({ all: true, filters: { label: ['docket.job'] } })),
      ...(await this.docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL] } })),
    ];
    for (const info of containers) {
      if (!scope.orphaned(info.Labels?.[OWNER_LABEL], info.Created * 1000)) continue;
      await this.docker.getContainer(info.Id).remove({ force: true, v: true }).catch(() => undefined);
      reaped.containers.push(info.Id);
      const holder = info.Labels[HOLDER_LABEL];
      scope.log.info(holder
        ? `reaper: removed job folder holder ${info.Id.slice(0, 12)} of job ${holder} (${info.Labels[HOLDER_ENGINE_LABEL]})`
        : `reaper: removed container ${info.Id.slice(0, 12)} of job ${info.Labels['docket.job']} (${info.Labels['docket.engine']})`);
    }
    const { Volumes: volumes } = await this.docker.listVolumes({ filters: { label: ['docket.job'] } });
    for (const volume of volumes ?? []) {
      const created = Date.parse((volume as { CreatedAt?: string }).CreatedAt ?? '') || Date.now();
      if (!scope.orphaned(volume.Labels?.[OWNER_LABEL], created)) continue;
      try {
        await this.docker.getVolume(volume.Name).remove();
        reaped.volumes.push(volume.Name);
        scope.log.info(`reaper: removed volume ${volume.Name} of job ${volume.Labels?.['docket.job']}`);
      } catch {
        // Still in use by a container being removed; the next pass takes it.
      }
    }
    return reaped;
  }

  /** The image ID a tag resolves to now; ImageMissingError when it is not on the host. */
  private async resolveImage(image: string, engine: string): Promise<string> {
    const id = await this.imageId(image);
    if (!id) throw new ImageMissingError(image, engine);
    return id;
  }

  private async imageId(image: string): Promise<string | undefined> {
    try {
      const info = await this.docker.getImage(image).inspect();
      return info.Id;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw wrapDockerError(error, `inspecting image ${image}`);
    }
  }

  /**
   * The job volume is a tmpfs capped at the input plus the output limit (plus a margin), so an engine
   * cannot write more than that however it spreads its writes. A tmpfs volume loses its content when
   * the last container using it stops, so a holder container keeps it mounted for the job's life;
   * the input goes in and the output comes out through the holder, by the archive API.
   */
  async run(job: EngineJob): Promise<EngineRun> {
    const imageId = job.imageId ?? await this.timed('image', job.job, () => this.resolveImage(job.image, job.engine));
    const labels = {
      'docket.job': job.job,
      'docket.engine': job.engine,
      'docket.attempt': String(job.attempt),
      [OWNER_LABEL]: OWNER_ID,
    };
    const volumeName = `docket-${safeName(job.engine)}-${randomBytes(6).toString('hex')}`;
    let holder: Docker.Container | undefined;
    let container: Docker.Container | undefined;
    const started = Date.now();
    try {
      await this.timed('volume', job.job, () => call(
        () => this.docker.createVolume({ Name: volumeName, Driver: 'local', DriverOpts: jobVolumeOptions(job), Labels: labels }),
        'creating the job volume',
      ));
      holder = await this.startHolder(job, volumeName);
      const archive = await packInput(job.input);
      // Destroyed either way, so the inputs it holds open are closed even when Docker never read it.
      await this.timed('archive in', job.job, () => call(() => holder!.putArchive(archive, { path: job.mountpoint }), 'copying the input in'))
        .finally(() => archive.destroy());
      const network = job.network === 'egress' ? (await this.ensureEgress()).name : 'none';
      const user = await this.userFor(job, imageId);
      container = await this.timed('create', job.job, () => call(
        async () => this.docker.createContainer(containerSpec(job, imageId, volumeName, labels, network, user)),
        `creating the ${job.engine} container`,
      )).catch((error) => {
        // The network may have been removed under a long-lived worker: look it up again next time.
        if (job.network === 'egress') this.egress = undefined;
        throw error;
      });
      const { exitCode, oomKilled, stdout, stderr } = await this.execute(container, job);
      const jobFolderFull = await this.timed('measure folder', job.job, () => this.jobFolderFull(holder!, job.mountpoint));
      const { outputs, truncated: outputTruncated } = await this.timed('archive out', job.job, () => this.copyOut(holder!, job));
      return {
        imageId,
        exitCode,
        oomKilled,
        stdout,
        stderr,
        outputs,
        truncated: outputTruncated || jobFolderFull || stdout.truncated || stderr.truncated,
        jobFolderFull,
        durationMs: Date.now() - started,
      };
    } finally {
      await this.cleanup([container, holder], volumeName, job.job);
    }
  }

  /**
   * The manifest's user; else, for a job run as Cortex runs it, the image's own user when that is not
   * root (an image built to run as `analyzer` may keep its files from others); else `nobody`.
   */
  private async userFor(job: EngineJob, imageId: string): Promise<string> {
    if (job.user) return job.user;
    if (!job.imageSetup) return DEFAULT_ENGINE_USER;
    const info = await this.timed('image', job.job, () => call(() => this.docker.getImage(imageId).inspect(), `inspecting image ${job.image}`));
    const user = info.Config?.User?.trim() ?? '';
    return user && !isRoot(user) ? user : DEFAULT_ENGINE_USER;
  }

  private async startHolder(job: EngineJob, volumeName: string): Promise<Docker.Container> {
    const labels = {
      [HOLDER_LABEL]: job.job,
      [HOLDER_ENGINE_LABEL]: job.engine,
      'docket.attempt': String(job.attempt),
      [OWNER_LABEL]: OWNER_ID,
    };
    let holder: Docker.Container;
    try {
      holder = await this.timed('holder create', job.job, () => this.docker.createContainer(holderSpec(this.holderImage, job.mountpoint, volumeName, labels)));
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) throw new HolderImageMissingError(this.holderImage, job.engine);
      throw wrapDockerError(error, 'creating the job folder holder');
    }
    try {
      await this.timed('holder start', job.job, () => holder.start());
    } catch (error) {
      await holder.remove({ force: true }).catch(() => undefined);
      throw wrapDockerError(error, 'starting the job folder holder');
    }
    return holder;
  }

  /** Whether the engine used up the job volume's space or inodes, as the holder (still running) sees it. */
  private async jobFolderFull(holder: Docker.Container, mountpoint: string): Promise<boolean> {
    const text = await call(() => execText(holder, ['stat', '-f', '-c', '%f %d', mountpoint]), 'measuring the job folder');
    const [freeBlocks, freeInodes] = text.trim().split(/\s+/).map(Number);
    if (!Number.isFinite(freeBlocks) || !Number.isFinite(freeInodes)) throw new Error(`cannot read the job folder's free space from ${JSON.stringify(text)}`);
    return freeBlocks === 0 || freeInodes === 0;
  }

  private async execute(container: Docker.Container, job: EngineJob) {
    const stream = (await this.timed('attach', job.job, () => call(
      () => container.attach({ stream: true, stdout: true, stderr: true, hijack: true }),
      'attaching to the container',
    ))) as NodeJS.ReadableStream & { destroy?: () => void };
    const stdoutSink = new PassThrough({ highWaterMark: 256 * 1024 });
    const stderrSink = new PassThrough({ highWaterMark: 256 * 1024 });
    const storing = Promise.all([
      this.blobs.put(stdoutSink, { limit: job.limits.output, truncate: true }),
      this.blobs.put(stderrSink, { limit: job.limits.output, truncate: true }),
    ]);
    const demuxing = demux(stream, stdoutSink, stderrSink).finally(() => {
      stdoutSink.end();
      stderrSink.end();
    });
    // Awaited below; these only keep an early failure (the start refused) from going unhandled.
    demuxing.catch(() => undefined);
    storing.catch(() => undefined);

    let timedOut = false;
    let cancelled = false;
    const kill = () => container.kill().catch(() => undefined);
    const timer = setTimeout(() => { timedOut = true; void kill(); }, job.timeoutMs);
    const beat = setInterval(() => job.heartbeat?.(), HEARTBEAT_MS);
    const onAbort = () => { cancelled = true; void kill(); };
    job.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.timed('start', job.job, () => call(() => container.start(), `starting the ${job.engine} container`));
      job.heartbeat?.();
      await this.timed('wait', job.job, () => call(() => container.wait(), 'waiting for the container'));
      await demuxing;
      const [stdout, stderr] = await storing;
      const state = (await this.timed('inspect', job.job, () => call(() => container.inspect(), 'inspecting the finished container'))).State;
      if (cancelled) throw job.signal?.reason ?? new Error('cancelled');
      if (timedOut) throw new EngineTimeoutError(job.engine, job.timeoutMs);
      return { exitCode: state.ExitCode, oomKilled: state.OOMKilled, stdout, stderr };
    } finally {
      clearTimeout(timer);
      clearInterval(beat);
      job.signal?.removeEventListener('abort', onAbort);
      stream.destroy?.();
    }
  }

  /** Copies the output path out of the holder by the archive API, capping the total at `limits.output`. */
  private async copyOut(container: Docker.Container, job: EngineJob): Promise<{ outputs: OutputFile[]; truncated: boolean }> {
    if (!job.outputPath) return { outputs: [], truncated: false };
    const path = `${job.mountpoint.replace(/\/$/, '')}/${job.outputPath}`;
    let archive: NodeJS.ReadableStream;
    try {
      archive = await container.getArchive({ path });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return { outputs: [], truncated: false };
      throw wrapDockerError(error, 'copying the output out');
    }
    const collected = new OutputCollector(this.blobs, job.limits.output);
    const extractor = tarExtract();
    const done = new Promise<void>((resolve, reject) => {
      extractor.on('entry', (header, body, next) => {
        if (header.type !== 'file') {
          body.resume();
          body.on('end', next);
          return;
        }
        const relative = header.name.split('/').slice(1).join('/') || header.name;
        collected
          .add(relative, body as unknown as AsyncIterable<Uint8Array>)
          .then(() => next())
          .catch((error) => {
            body.resume();
            next(error);
          });
      });
      extractor.on('finish', resolve);
      extractor.on('error', reject);
    });
    // pipe() forwards no errors: a connection to Docker cut mid-copy must fail this job, not the worker.
    (archive as Readable).on('error', (error) => extractor.destroy(error));
    (archive as Readable).pipe(extractor);
    // A failed extraction leaves the archive paused: destroy it, or its connection to Docker stays open.
    await done.finally(() => (archive as Readable).destroy());
    return { outputs: collected.outputs, truncated: collected.truncated };
  }

  private async cleanup(containers: Array<Docker.Container | undefined>, volumeName: string, job: string): Promise<void> {
    await this.timed('remove containers', job, async () => {
      for (const container of containers) {
        if (container) await container.remove({ force: true, v: true }).catch(() => undefined);
      }
    });
    await this.timed('remove volume', job, () => this.docker.getVolume(volumeName).remove().catch(() => undefined));
  }
}

/** The job volume's size: every input file in whole pages, the output limit and the margin. */
export function jobVolumeSize(job: Pick<EngineJob, 'input' | 'limits'>): number {
  const input = job.input.reduce((sum, entry) => sum + (entry.type === 'file' ? pages(entry.size ?? 0) * PAGE : 0), 0);
  return input + pages(job.limits.output) * PAGE + JOB_VOLUME_MARGIN;
}

/** A local-driver tmpfs: size and inodes capped, root-owned so only the folders the protocol opens are writable. */
function jobVolumeOptions(job: EngineJob): Record<string, string> {
  const inodes = job.input.length + pages(job.limits.output) + SPARE_INODES;
  return {
    type: 'tmpfs',
    device: 'tmpfs',
    o: `size=${jobVolumeSize(job)},nr_inodes=${inodes},uid=0,gid=0,mode=0755,nosuid,nodev`,
  };
}

function pages(bytes: number): number {
  return Math.ceil(bytes / PAGE);
}

/** A container that only sleeps, holding the job volume; it runs nothing of the engine's. */
function holderSpec(image: string, mountpoint: string, volumeName: string, labels: Record<string, string>): Docker.ContainerCreateOptions {
  return {
    Image: image,
    Entrypoint: ['sleep'],
    Cmd: ['infinity'],
    User: DEFAULT_ENGINE_USER,
    Labels: labels,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: 32 * 1024 * 1024,
      MemorySwap: 32 * 1024 * 1024,
      NanoCpus: 100_000_000,
      PidsLimit: 8,
      LogConfig: { Type: 'none', Config: {} },
      Mounts: [{ Type: 'volume', Source: volumeName, Target: mountpoint }],
      Privileged: false,
      AutoRemove: false,
    },
  };
}

/** Runs a short command in a running container and returns what it printed on stdout (empty if it failed). */
async function execText(container: Docker.Container, cmd: string[]): Promise<string> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await demux(stream, stdout, new PassThrough().resume());
  return Buffer.concat(chunks).toString('utf8');
}

/** `root`, `0`, `root:…` or `0:…`: a user Docket never runs an engine as unless its manifest says so. */
function isRoot(user: string): boolean {
  const name = user.split(':')[0];
  return name === 'root' || name === '0';
}

function containerSpec(job: EngineJob, imageId: string, volumeName: string, labels: Record<string, string>, network: string, user: string): Docker.ContainerCreateOptions {
  return {
    Image: imageId,
    Entrypoint: job.entrypoint,
    Cmd: job.cmd,
    Env: Object.entries({ HOME: '/tmp', ...job.env }).map(([key, value]) => `${key}=${value}`),
    User: user,
    Labels: labels,
    // Unset keeps the image's WORKDIR, where Cortex-Analyzers' relative entry points resolve.
    WorkingDir: job.imageSetup ? undefined : job.mountpoint,
    NetworkDisabled: job.network === 'none',
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      NetworkMode: network,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${job.limits.tmp},nr_inodes=${pages(job.limits.tmp) + SPARE_INODES}` },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: job.limits.memory,
      MemorySwap: job.limits.memory,
      NanoCpus: Math.round(job.limits.cpus * 1e9),
      PidsLimit: job.limits.pids,
      Ulimits: [
        // The largest file the engine may write: its output, or a scratch file filling /tmp.
        { Name: 'fsize', Soft: Math.max(job.limits.output, job.limits.tmp), Hard: Math.max(job.limits.output, job.limits.tmp) },
        { Name: 'nofile', Soft: 1024, Hard: 1024 },
      ],
      // Output is read from the attach stream; a log driver would make the daemon write it all again.
      LogConfig: { Type: 'none', Config: {} },
      Mounts: [
        { Type: 'volume', Source: volumeName, Target: job.mountpoint },
        ...(job.volumes ?? []).map((volume) => ({ Type: 'volume' as const, Source: volume.name, Target: volume.target, ReadOnly: volume.readonly })),
      ],
      Privileged: false,
      AutoRemove: false,
    },
  };
}

/**
 * Builds the input archive; entries are owned by root so the engine's user cannot change them. Every
 * source is opened before the archive starts, so a missing input (a blob removed under a queued job)
 * fails this job with its own error instead of breaking the stream Docker is reading.
 */
export async function packInput(entries: InputEntry[]): Promise<Readable> {
  const sources = await Promise.all(entries.map(async (entry) => (entry.type === 'file' ? entry.open!() : undefined)));
  const pack = tarPack();
  // Each source is listened to from the start: one that fails, or one not reached yet when the archive
  // fails, fails this archive (and with it Docker's request), never the process; none stays open.
  for (const source of sources) source?.on('error', (error) => pack.destroy(error));
  pack.on('close', () => {
    for (const source of sources) source?.destroy();
  });
  void (async () => {
    try {
      for (const [index, entry] of entries.entries()) {
        const header = { name: entry.name, mode: entry.mode, uid: 0, gid: 0, mtime: new Date() };
        if (entry.type === 'directory') {
          pack.entry({ ...header, type: 'directory' });
          continue;
        }
        const sink = pack.entry({ ...header, type: 'file', size: entry.size ?? 0 });
        sources[index]!.pipe(sink);
        await once(sink, 'finish');
      }
      pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
    }
  })();
  return pack as unknown as Readable;
}

/**
 * Splits Docker's multiplexed attach stream (8-byte frame headers) into stdout and stderr, waiting
 * for each sink to drain so a chatty container cannot make the worker buffer without bound.
 */
export async function demux(stream: NodeJS.ReadableStream, stdout: Writable, stderr: Writable): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const length = pending.readUInt32BE(4);
      if (pending.length < 8 + length) break;
      const target = pending[0] === 2 ? stderr : stdout;
      if (!target.write(pending.subarray(8, 8 + length))) await once(target, 'drain');
      pending = pending.subarray(8 + length);
    }
  }
}

async function call<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw wrapDockerError(error, what);
  }
}

function wrapDockerError(error: unknown, what: string): Error {
  if (error instanceof ImageMissingError || error instanceof EngineTimeoutError) return error;
  if (isTransientDockerError(error)) {
    return new DockerUnavailableError(`Docker failed while ${what}: ${(error as Error).message}. Is the Docker daemon running (docker info)?`);
  }
  const wrapped = new Error(`Docker refused ${what}: ${(error as Error).message}`);
  return wrapped;
}

function safeName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_.-]/g, '_');
}
