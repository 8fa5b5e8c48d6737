import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
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
import {
  DEFAULT_ENGINE_USER, demux, type FolderShape, Holder, HOLDER_ENGINE_LABEL, HOLDER_IMAGE, HOLDER_LABEL, type HolderStream, holderSpec,
  JobFolderPool, jobVolumeInodes, jobVolumeSize, pages, POOL_LABEL, pooledShape, type PoolSlot, SPARE_INODES, tmpfsOptions,
} from './job-folder';

export const OWNER_LABEL = 'docket.owner';
const HEARTBEAT_MS = 5_000;

/** This process's identity on the Docker host, so the reaper can tell live owners from dead ones. */
export const OWNER_ID = `${hostname()}:${process.pid}`;

/** How long a holder has to answer a question that is not a ping; a `get` has more, by the folder's size. */
const HOLDER_ANSWER_MS = 30_000;
const MiB = 1024 * 1024;
/** How long a warm folder's holder has to answer, when its slot is taken, that it still runs. */
const POOL_PING_MS = 2_000;
/** How long closing a runner waits for the removals under way. */
const CLOSE_WAIT_MS = 60_000;

/**
 * This process's warm job folders by name, from before their volume is made until they are removed
 * (ready, in a job's use, or being removed): the reaper leaves these alone, and removes the process's
 * others (a removal that failed while Docker was down). Process-wide, as `runningJobs` is.
 */
const poolSlots = new Set<string>();

/**
 * The jobs running in this process, counted by the key their engine container, holder and volume share
 * (`jobKey`). A job whose removals failed because Docker was down leaves things labelled with a live
 * owner, this process; the reaper removes those of them that no running job holds, and never one a
 * running job still uses. Process-wide, as OWNER_ID is: every runner of the process shares the owner.
 * Whatever is labelled `docket.job` or `docket.holder` with OWNER_ID must be created while its job is held.
 */
const runningJobs = new Map<string, number>();

/** The key a job's containers, holder and volume share: job, engine and attempt, from the labels of any of them. */
export function jobKey(labels: Record<string, string> | undefined): string {
  return JSON.stringify([
    labels?.['docket.job'] ?? labels?.[HOLDER_LABEL] ?? '',
    labels?.['docket.engine'] ?? labels?.[HOLDER_ENGINE_LABEL] ?? '',
    labels?.['docket.attempt'] ?? '',
  ]);
}

/** Counts the job these labels name as running in this process until the returned release is called. */
export function holdJob(labels: Record<string, string>): () => void {
  const key = jobKey(labels);
  runningJobs.set(key, (runningJobs.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (runningJobs.get(key) ?? 1) - 1;
    if (left > 0) runningJobs.set(key, left);
    else runningJobs.delete(key);
  };
}

export interface DockerRunnerOptions {
  /** The Docker network `network: egress` containers join (DOCKET_EGRESS_NETWORK). */
  egressNetwork?: string;
  /** Where the egress network's confinement (or the lack of it) is reported. */
  log?: Logger;
  /** The image of the container that keeps each job volume mounted while the job runs. */
  holderImage?: string;
  /** Told how long each Docker API call of a job took (bench/latency.ts); off unless given. */
  timing?: DockerTiming;
  /**
   * Keep warm job folders, so a job whose input fits the allowance (POOL_INPUT_BYTES, POOL_INPUT_ENTRIES)
   * takes a folder whose holder already runs: up to `ready` (2) per shape (mountpoint, output limit)
   * made ahead, only for a shape a job of this runner used, each emptied and used again after its job,
   * all of a shape removed after `idleMs` (5 minutes) without a job. Off unless given; the engine
   * workers' runner has it on (activities/runners/index.ts).
   */
  pool?: { ready?: number; idleMs?: number };
}

/** One Docker API call of a job: which step (`volume`, `create`, `wait`…), for which job, and its duration. */
export type DockerTiming = (step: DockerStep, ms: number, job: string) => void;
export type DockerStep =
  | 'image' | 'volume' | 'holder create' | 'holder attach' | 'holder start' | 'archive in' | 'create' | 'attach' | 'start' | 'wait'
  | 'inspect' | 'measure folder' | 'archive out' | 'remove container' | 'remove holder' | 'remove volume'
  /** Taking a warm job folder: asking its holder whether it runs and is empty (or finding none ready). */
  | 'pool take'
  /** Putting the input in a warm job folder through its holder's stdin (the archive API's `archive in` otherwise). */
  | 'put input'
  /** Copying the output out of a warm job folder through its holder's stdout (the archive API's `archive out` otherwise). */
  | 'get output'
  /** Emptying a warm job folder after its job, through its holder, so that it can be used again. */
  | 'clean folder'
  /** The whole job until its result (the steps above overlap); the removals come after it, in the background. */
  | 'job';

/** The holder image is missing: nothing to retry until the base image is built. */
export class HolderImageMissingError extends ImageMissingError {
  /** `folders`: whose job folders the holder keeps (`engine <name>`, or `the warm job folders`). */
  constructor(image: string, folders: string) {
    super(image, folders.replace(/^engine /, ''));
    this.message = `image ${image}, which keeps the job folder${folders.startsWith('engine ') ? '' : 's'} of ${folders} mounted, is not on the Docker host: build it with scripts/provision.sh base`;
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
  /**
   * Removals ended so far (a job's parts, a warm folder's), and how many had ended when the last
   * complete reap began (`reapDue`): a removal may have failed, leaving something for the reaper.
   */
  private removalsEnded = 0;
  private reapedThrough = 0;
  private readonly pool?: JobFolderPool;
  /** Removals and warm folders under way, which `settled` and `close` wait for. */
  private readonly background = new Set<Promise<void>>();
  /** Public so that a benchmark can turn it on in a system already started; see DockerRunnerOptions. */
  timing?: DockerTiming;

  constructor(private readonly docker: Docker, private readonly blobs: BlobStore, options: DockerRunnerOptions = {}) {
    this.egressNetwork = options.egressNetwork ?? DEFAULT_EGRESS_NETWORK;
    this.log = options.log ?? silentLogger;
    this.holderImage = options.holderImage ?? HOLDER_IMAGE;
    this.timing = options.timing;
    if (options.pool) {
      this.pool = new JobFolderPool({
        ready: options.pool.ready ?? 2,
        idleMs: options.pool.idleMs ?? 5 * 60_000,
        make: (shape) => this.makeSlot(shape),
        discard: (slot) => this.removeSlot(slot),
        track: (work) => this.track(work),
        log: this.log,
      });
    }
  }

  /**
   * Stops making warm job folders, removes the ready ones, and waits for every removal under way:
   * a worker's graceful stop calls it once its last job has answered. Jobs run after it get a folder
   * made for them. A Docker that does not answer holds the stop for at most CLOSE_WAIT_MS: what is
   * left then is the reaper's (its owner will be gone).
   */
  async close(): Promise<void> {
    this.pool?.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled(), new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); })]);
    clearTimeout(timer);
  }

  /** Resolves once the removals and warm folders under way (and any they started) have ended. */
  async settled(): Promise<void> {
    // Each round waits for what was under way when it began; a removal starts no more than one more.
    for (let round = 0; this.background.size && round < 100; round += 1) await Promise.allSettled([...this.background]);
  }

  /** Keeps `work` (which never rejects) counted as under way until it ends. */
  private track(work: Promise<void>): void {
    const tracked = work.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  /** Runs one Docker call, telling the timing hook its duration when there is one and the call is a job's. */
  private async timed<T>(step: DockerStep, job: string | undefined, fn: () => Promise<T>): Promise<T> {
    const hook = this.timing;
    if (!hook || job === undefined) return fn();
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
   * Removes engine containers, job folder holders, job volumes and warm job folders whose owner `scope`
   * calls orphaned, telling it whether this process still holds each: a running job (by its labels) or
   * a warm folder this process keeps or is removing (by its name). Holders keep job volumes (tmpfs)
   * mounted, so they go with the engine containers, before the volumes. A removal Docker could not
   * answer leaves the pass incomplete, so `reapDue` stays true and the reaper comes back soon.
   */
  async reap(scope: ReapScope): Promise<Reaped> {
    const through = this.removalsEnded;
    let complete = true;
    const reaped: Reaped = { containers: [], volumes: [], folders: [] };
    const held = (labels: Record<string, string> | null | undefined) => {
      const slot = labels?.[POOL_LABEL];
      return slot === undefined ? runningJobs.has(jobKey(labels ?? undefined)) : poolSlots.has(slot);
    };
    const containers = [
      ...(await this.docker.listContainers({ all: true, filters: { label: ['docket.job'] } })),
      ...(await this.docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL] } })),
      ...(await this.docker.listContainers({ all: true, filters: { label: [POOL_LABEL] } })),
    ];
    for (const info of containers) {
      if (!scope.orphaned(info.Labels?.[OWNER_LABEL], info.Created * 1000, held(info.Labels))) continue;
      const removed = await this.docker.getContainer(info.Id).remove({ force: true, v: true }).then(() => true, (error) => {
        if (isTransientDockerError(error)) complete = false;
        return false;
      });
      if (!removed) continue;
      reaped.containers.push(info.Id);
      const holder = info.Labels[HOLDER_LABEL];
      const slot = info.Labels[POOL_LABEL];
      scope.log.info(holder
        ? `reaper: removed job folder holder ${info.Id.slice(0, 12)} of job ${holder} (${info.Labels[HOLDER_ENGINE_LABEL]})`
        : slot
          ? `reaper: removed warm job folder holder ${info.Id.slice(0, 12)} (${slot})`
          : `reaper: removed container ${info.Id.slice(0, 12)} of job ${info.Labels['docket.job']} (${info.Labels['docket.engine']})`);
    }
    const volumes = [
      ...((await this.docker.listVolumes({ filters: { label: ['docket.job'] } })).Volumes ?? []),
      ...((await this.docker.listVolumes({ filters: { label: [POOL_LABEL] } })).Volumes ?? []),
    ];
    for (const volume of volumes) {
      const created = Date.parse((volume as { CreatedAt?: string }).CreatedAt ?? '') || Date.now();
      if (!scope.orphaned(volume.Labels?.[OWNER_LABEL], created, held(volume.Labels))) continue;
      try {
        await this.docker.getVolume(volume.Name).remove();
        reaped.volumes.push(volume.Name);
        const job = volume.Labels?.['docket.job'];
        scope.log.info(`reaper: removed volume ${volume.Name} of ${job ? `job ${job}` : 'the warm job folders'}`);
      } catch (error) {
        // Still in use by a container being removed: the next pass takes it.
        if (isTransientDockerError(error)) complete = false;
      }
    }
    if (complete) this.reapedThrough = through;
    return reaped;
  }

  reapDue(): boolean {
    return this.removalsEnded > this.reapedThrough;
  }

  /** Holds a job (`holdJob`) until the returned release, called once its removals ended (counted for `reapDue`). */
  private hold(labels: Record<string, string>): () => void {
    const release = holdJob(labels);
    return () => {
      release();
      this.removalsEnded += 1;
    };
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
   * the input goes in and the output comes out through the holder, by the archive API. A job whose
   * input fits takes a warm folder (volume and running holder made beforehand) when the pool has one.
   * Calls that do not need each other's results go at once (the timing hook's `job` step is the wall
   * time), and the job's containers and volume are removed (a warm folder emptied and given back:
   * `giveBack`) after its result is returned, in the background: the job stays held (`holdJob`) until
   * its own are gone, so the reaper never races them.
   */
  async run(job: EngineJob): Promise<EngineRun> {
    const imageId = job.imageId ?? await this.timed('image', job.job, () => this.resolveImage(job.image, job.engine));
    const labels = {
      'docket.job': job.job,
      'docket.engine': job.engine,
      'docket.attempt': String(job.attempt),
      [OWNER_LABEL]: OWNER_ID,
    };
    const release = this.hold(labels);
    // What exists so far, for the removals: filled in as each part is made.
    const parts: JobParts = { spare: { bytes: 0, inodes: 0 } };
    const started = Date.now();
    const begun = performance.now();
    try {
      const slot = await this.takeSlot(job);
      if (slot) {
        parts.slot = slot;
        parts.volume = slot.name;
        parts.holder = slot.holder;
        parts.spare = { bytes: slot.shape.size - jobVolumeSize(job), inodes: slot.shape.inodes - jobVolumeInodes(job) };
      } else {
        parts.volume = `docket-${safeName(job.engine)}-${randomBytes(6).toString('hex')}`;
        const volumeName = parts.volume;
        await this.timed('volume', job.job, () => call(
          () => this.docker.createVolume({ Name: volumeName, Driver: 'local', DriverOpts: tmpfsOptions(jobVolumeSize(job), jobVolumeInodes(job)), Labels: labels }),
          'creating the job volume',
        ));
      }
      const volumeName = parts.volume;
      // The engine's container needs only the volume's name: it is created while the holder starts and the input goes in.
      const ready = await Promise.allSettled([
        this.fillJobFolder(job, volumeName, parts),
        this.createContainer(job, imageId, volumeName, labels, parts).then((container) => { parts.container = container; }),
      ]);
      for (const settled of ready) if (settled.status === 'rejected') throw settled.reason;
      const { holder, container } = parts as Required<JobParts>;
      const { exitCode, oomKilled, stdout, stderr } = await this.execute(container, job);
      // The engine has stopped: its container goes while the job folder is measured and read through the holder.
      parts.removing = this.removeContainer(container, 'remove container', job.job);
      const [jobFolderFull, { outputs, truncated: outputTruncated }] = await Promise.all([
        this.timed('measure folder', job.job, () => holder.folderFull(parts.spare)),
        this.copyOut(parts, job),
      ]);
      // A holder that stopped early took the tmpfs with it: what came out was an empty folder, not the engine's output.
      if (holder.stopped) throw new DockerUnavailableError(`the job folder holder of engine ${job.engine} stopped before the output was copied out`);
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
      this.timing?.('job', performance.now() - begun, job.job);
      this.track((parts.slot ? this.giveBack(parts.slot, parts, job.job) : this.cleanup(parts, job.job)).finally(release));
    }
  }

  /**
   * After a job in a warm folder: once its engine container is removed (no process of the engine is
   * left to write in the folder), the holder empties the folder, and the pool takes it back when it
   * is as it was made (`Holder.clean`). It is removed instead when the container could not be removed,
   * when the engine ran as root (the owner of the folder's root, which may have left on it what
   * emptying does not undo), or when it did not come back empty.
   */
  private async giveBack(slot: PoolSlot, parts: JobParts, job: string): Promise<void> {
    const removed = await (parts.removing ?? (parts.container ? this.removeContainer(parts.container, 'remove container', job) : true));
    const asRoot = parts.user !== undefined && isRoot(parts.user);
    const clean = removed && !asRoot && !slot.holder.stopped
      && await this.timed('clean folder', job, () => slot.holder.clean(slot.fresh)).catch(() => false);
    if (clean && this.pool) this.pool.give(slot);
    else this.removeSlot(slot);
  }

  /**
   * A warm job folder for this job, or undefined (no pool, an input over the allowance, none ready).
   * Taking one asks its holder to answer on its open connection: a holder that stopped (and with it
   * the tmpfs) is never handed out; it is removed and the next one (or the cold path) is taken.
   */
  private async takeSlot(job: EngineJob): Promise<PoolSlot | undefined> {
    const shape = pooledShape(job);
    if (!this.pool || !shape) return undefined;
    const pool = this.pool;
    // A folder is handed out only if its holder answers, and answers that the folder is as empty as when made.
    return this.timed('pool take', job.job, () => pool.take(shape, (slot) => slot.holder.figures(POOL_PING_MS).then((figures) => figures === slot.fresh, () => false)));
  }

  /**
   * Makes one warm job folder of `shape`: its volume, then its holder (one that can empty the folder),
   * running and attached, and what the holder says of the empty folder (`fresh`).
   */
  private async makeSlot(shape: FolderShape): Promise<PoolSlot> {
    const name = `docket-pool-${randomBytes(6).toString('hex')}`;
    const labels = { [POOL_LABEL]: name, [OWNER_LABEL]: OWNER_ID };
    poolSlots.add(name);
    let holder: Holder | undefined;
    try {
      await call(
        () => this.docker.createVolume({ Name: name, Driver: 'local', DriverOpts: tmpfsOptions(shape.size, shape.inodes), Labels: labels }),
        'creating a warm job volume',
      );
      holder = await this.startHolder(shape.mountpoint, name, labels, undefined, 'the warm job folders', true);
      // A ready folder must not keep a process alive that has nothing else to do; a job's own calls keep it alive while it runs.
      holder.unref();
      return { name, holder, shape, fresh: await holder.figures() };
    } catch (error) {
      this.removingSlot(name, this.cleanup({ holder, volume: name, spare: { bytes: 0, inodes: 0 } }, undefined));
      throw error;
    }
  }

  /** Removes a warm job folder no job used (its holder stopped, its shape idle, or the runner closing). */
  private removeSlot(slot: PoolSlot): void {
    this.removingSlot(slot.name, this.cleanup({ holder: slot.holder, volume: slot.name, spare: { bytes: 0, inodes: 0 } }, undefined));
  }

  /** Tracks the removal of a warm folder no job took; once it ends the folder is no longer this process's, and the reaper may look. */
  private removingSlot(name: string, removal: Promise<void>): void {
    this.track(removal.finally(() => {
      poolSlots.delete(name);
      this.removalsEnded += 1;
    }));
  }

  /**
   * Starts the holder unless the job took a warm one (noted in `parts` at once, for the removals) and
   * puts the job's input in through it: a warm folder's holder unpacks it from its stdin (the input is
   * within the 1 MiB allowance), any other takes it by the archive API.
   */
  private async fillJobFolder(job: EngineJob, volumeName: string, parts: JobParts): Promise<void> {
    if (parts.slot) {
      const holder = parts.slot.holder;
      const archive = await buffer(await packInput(job.input));
      await this.timed('put input', job.job, () => holder.put(archive));
      return;
    }
    parts.holder ??= await this.startHolder(job.mountpoint, volumeName, {
      [HOLDER_LABEL]: job.job,
      [HOLDER_ENGINE_LABEL]: job.engine,
      'docket.attempt': String(job.attempt),
      [OWNER_LABEL]: OWNER_ID,
    }, job.job, `engine ${job.engine}`);
    const archive = await packInput(job.input);
    const holder = parts.holder.container;
    // Destroyed either way, so the inputs it holds open are closed even when Docker never read it.
    await this.timed('archive in', job.job, () => call(() => holder.putArchive(archive, { path: job.mountpoint }), 'copying the input in'))
      .finally(() => archive.destroy());
  }

  /** Creates the engine's container; the user it runs as goes in `parts` first. */
  private async createContainer(job: EngineJob, imageId: string, volumeName: string, labels: Record<string, string>, parts: JobParts): Promise<Docker.Container> {
    const network = job.network === 'egress' ? (await this.ensureEgress()).name : 'none';
    const user = await this.userFor(job, imageId);
    parts.user = user;
    return this.timed('create', job.job, () => call(
      async () => this.docker.createContainer(containerSpec(job, imageId, volumeName, labels, network, user)),
      `creating the ${job.engine} container`,
    )).catch((error) => {
      // The network may have been removed under a long-lived worker: look it up again next time.
      if (job.network === 'egress') this.egress = undefined;
      throw error;
    });
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

  /**
   * Creates the holder, attaches to its stdin and stdout (the way the folder is measured: see
   * holderSpec) and starts it. `job` names the job for the timing hook (none for a warm folder);
   * `engine` says whose folder it holds (`engine <name>`, `the warm job folders`) if its image is missing;
   * a holder that `cleans` can empty its folder (a warm folder's).
   */
  private async startHolder(mountpoint: string, volumeName: string, labels: Record<string, string>, job: string | undefined, engine: string, cleans = false): Promise<Holder> {
    let container: Docker.Container;
    try {
      container = await this.timed('holder create', job, () => this.docker.createContainer(holderSpec(this.holderImage, mountpoint, volumeName, labels, cleans)));
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) throw new HolderImageMissingError(this.holderImage, engine);
      throw wrapDockerError(error, 'creating the job folder holder');
    }
    let holder: Holder | undefined;
    try {
      const stream = await this.timed('holder attach', job, () => container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }));
      holder = new Holder(container, stream as HolderStream);
      await this.timed('holder start', job, () => container.start());
      return holder;
    } catch (error) {
      holder?.close();
      await container.remove({ force: true }).catch(() => undefined);
      throw wrapDockerError(error, 'starting the job folder holder');
    }
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
      await this.timed('wait', job.job, () => call(() => waitWatched(container, HEARTBEAT_MS), 'waiting for the container'));
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

  /**
   * Copies the output path out of the holder, capping the total at `limits.output`: from a warm
   * folder through its holder's stdout (`get output`), from any other by the archive API (`archive out`).
   */
  private async copyOut(parts: JobParts, job: EngineJob): Promise<{ outputs: OutputFile[]; truncated: boolean }> {
    if (!job.outputPath) return { outputs: [], truncated: false };
    const { slot } = parts;
    const dir = posix.dirname(job.outputPath);
    const base = posix.basename(job.outputPath);
    if (slot && !/[\n\r]/.test(job.outputPath)) {
      return this.timed('get output', job.job, async () => {
        // Up to a second per MiB the folder may hold beyond the usual answer's time: the holder has a tenth of a CPU.
        const { archive, found } = slot.holder.get(dir, base, HOLDER_ANSWER_MS + Math.ceil(slot.shape.size / MiB) * 1000);
        const [collected] = await Promise.all([this.collect(archive, job), found]);
        return collected;
      });
    }
    const path = `${job.mountpoint.replace(/\/$/, '')}/${job.outputPath}`;
    return this.timed('archive out', job.job, async () => {
      let archive: NodeJS.ReadableStream;
      try {
        archive = await parts.holder!.container.getArchive({ path });
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return { outputs: [], truncated: false };
        throw wrapDockerError(error, 'copying the output out');
      }
      return this.collect(archive as Readable, job);
    });
  }

  /** Stores the files of a tar archive of the output (its first path component dropped), capping the total at `limits.output`. */
  private async collect(archive: Readable, job: EngineJob): Promise<{ outputs: OutputFile[]; truncated: boolean }> {
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

  /** Removes a container, telling whether it is gone; a failure leaves it to the reaper. */
  private removeContainer(container: Docker.Container, step: DockerStep, job: string | undefined): Promise<boolean> {
    return this.timed(step, job, () => container.remove({ force: true, v: true }).then(() => true, () => false));
  }

  /**
   * The engine container (unless already going) and the holder go at once; the volume once no container
   * holds it. A removal that fails (Docker down) leaves the part to the reaper.
   */
  private async cleanup({ container, holder, removing, volume }: JobParts, job: string | undefined): Promise<void> {
    holder?.close();
    await Promise.all([
      removing ?? (container && this.removeContainer(container, 'remove container', job)),
      holder && this.removeContainer(holder.container, 'remove holder', job),
    ]);
    if (volume) await this.timed('remove volume', job, () => this.docker.getVolume(volume).remove().catch(() => undefined));
  }
}


/**
 * The parts of one job, for its removals: its volume (named before it is made; a warm folder's when
 * `slot`), holder and container, the user the engine runs as, the engine container's removal once it
 * began, and the room a warm folder has beyond the job's own cap (none for a folder made for the job).
 */
interface JobParts {
  volume?: string;
  slot?: PoolSlot;
  holder?: Holder;
  container?: Docker.Container;
  user?: string;
  removing?: Promise<boolean>;
  spare: { bytes: number; inodes: number };
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
 * `container.wait()`, ended as Docker being unavailable once its answer can no longer come. dockerode's
 * wait never settles when the daemon dies after sending the answer's headers (the connection closes
 * without an error), so a job cut short by a killed dockerd would hang, and hold its leftovers from the
 * reaper, forever. Every `everyMs` the container is inspected: a failed inspect (the daemon is down), or
 * a container found stopped twice while the wait stays unanswered (a daemon started again answers
 * nothing on the old connection), ends the wait with a transient error, so the job is retried.
 */
async function waitWatched(container: Docker.Container, everyMs: number): Promise<unknown> {
  const abort = new AbortController();
  const waiting = container.wait({ abortSignal: abort.signal });
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const lost = new Promise<never>((_, reject) => {
    let stoppedBefore = false;
    const check = async () => {
      try {
        // Bounded too: an inspect under way when the daemon dies would hang as the wait does.
        const { State: state } = await container.inspect({ abortSignal: AbortSignal.timeout(30_000) });
        if (!state.Running && stoppedBefore) {
          reject(Object.assign(new Error('the connection waiting for the container was lost (did the Docker daemon restart?)'), { code: 'ECONNRESET' }));
          return;
        }
        stoppedBefore = !state.Running;
      } catch (error) {
        reject(isTransientDockerError(error) ? error : Object.assign(new Error(`cannot inspect the running container: ${(error as Error).message}`), { code: 'ECONNRESET' }));
        return;
      }
      if (!settled) timer = setTimeout(check, everyMs);
    };
    timer = setTimeout(check, everyMs);
  });
  try {
    return await Promise.race([waiting, lost]);
  } finally {
    settled = true;
    clearTimeout(timer);
    abort.abort();
    waiting.catch(() => undefined);
    lost.catch(() => undefined);
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
