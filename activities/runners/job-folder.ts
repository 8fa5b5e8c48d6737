/**
 * A job folder: a local-driver tmpfs volume capped at the job's input plus its output limit, and the
 * holder container that keeps it mounted while the job's input goes in, the engine runs and the output
 * comes out (a tmpfs volume loses its content when the last container using it stops). Also the warm
 * folders the Docker runner keeps ready (`JobFolderPool`): made before a job asks, each used by one
 * job at a time, and used again once its holder emptied it and showed it as empty as when it was made.
 * The Docker calls that make and remove folders are the runner's (docker.ts); this module holds what
 * a folder is: its size, its holder's spec and conversation, and the pool's bookkeeping.
 */
import { once } from 'node:events';
import { PassThrough, type Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';
import type { EngineJob } from '../../infra/engine-runner';
import type { Logger } from '../../infra/log';
import { DockerUnavailableError } from '../errors';

/** The user engines run as when their manifest names none: `nobody`. */
export const DEFAULT_ENGINE_USER = '65534:65534';

/**
 * A holder container (it keeps a job volume mounted) carries its job and engine under labels of its
 * own, so that whatever counts a job's or an engine's containers by `docket.job`/`docket.engine`
 * still counts engine containers only; the reaper looks for both.
 */
export const HOLDER_LABEL = 'docket.holder';
export const HOLDER_ENGINE_LABEL = 'docket.holder.engine';
export const HOLDER_IMAGE = 'docket/base:bookworm';
/** How long the holder may take to tell the job folder's free space (one `stat` in a 0.1-CPU container), or to empty it. */
const MEASURE_TIMEOUT_MS = 30_000;
const PAGE = 4096;
/**
 * Room in the job volume beyond the input and the output limit: tmpfs counts whole pages, so a
 * few hundred small output files take more than their bytes. Past it the engine gets ENOSPC.
 */
export const JOB_VOLUME_MARGIN = 1024 * 1024;
/** Inodes beyond the input's and one per page of output: bounds empty files, which take no pages. */
export const SPARE_INODES = 1024;

/**
 * A warm job folder (a volume and its running holder, made before a job asks for one) carries its own
 * labels, never a job's: `docket.pool` (the slot's name, which is also its volume's) and the owner.
 */
export const POOL_LABEL = 'docket.pool';
/**
 * The input a warm job folder takes: up to 1 MiB (whole pages) in up to 64 entries. A larger input
 * gets a folder made for it (the cold path). A warm folder's tmpfs is therefore capped at this
 * allowance plus the output limit plus the margin, whatever the input (`pooledFolderSize`).
 */
export const POOL_INPUT_BYTES = 1024 * 1024;
export const POOL_INPUT_ENTRIES = 64;

/** Every input file in whole pages. */
function inputBytes(job: Pick<EngineJob, 'input'>): number {
  return job.input.reduce((sum, entry) => sum + (entry.type === 'file' ? pages(entry.size ?? 0) * PAGE : 0), 0);
}

/** The job volume's size: every input file in whole pages, the output limit and the margin. */
export function jobVolumeSize(job: Pick<EngineJob, 'input' | 'limits'>): number {
  return inputBytes(job) + pages(job.limits.output) * PAGE + JOB_VOLUME_MARGIN;
}

/** The job volume's inodes: one per input entry, one per page of output, and the spare ones. */
export function jobVolumeInodes(job: Pick<EngineJob, 'input' | 'limits'>): number {
  return job.input.length + pages(job.limits.output) + SPARE_INODES;
}

/**
 * A warm job folder's size: the input allowance (POOL_INPUT_BYTES) in place of the input, the output
 * limit and the margin. The engine may write up to it; past the job's own `jobVolumeSize` the run is
 * reported as over its output limit all the same (`Holder.folderFull`).
 */
export function pooledFolderSize(job: Pick<EngineJob, 'limits'>): number {
  return POOL_INPUT_BYTES + pages(job.limits.output) * PAGE + JOB_VOLUME_MARGIN;
}

/** What shapes a warm job folder, and the key its pool files it under. */
export interface FolderShape {
  key: string;
  mountpoint: string;
  size: number;
  inodes: number;
}

/** The warm folder shape a job fits, or undefined when its input is over the allowance. */
export function pooledShape(job: EngineJob): FolderShape | undefined {
  if (inputBytes(job) > POOL_INPUT_BYTES || job.input.length > POOL_INPUT_ENTRIES) return undefined;
  const size = pooledFolderSize(job);
  const inodes = POOL_INPUT_ENTRIES + pages(job.limits.output) + SPARE_INODES;
  return { key: JSON.stringify([job.mountpoint, size, inodes]), mountpoint: job.mountpoint, size, inodes };
}

/** A local-driver tmpfs: size and inodes capped, root-owned so only the folders the protocol opens are writable. */
export function tmpfsOptions(size: number, inodes: number): Record<string, string> {
  return {
    type: 'tmpfs',
    device: 'tmpfs',
    o: `size=${size},nr_inodes=${inodes},uid=0,gid=0,mode=0755,nosuid,nodev`,
  };
}

export function pages(bytes: number): number {
  return Math.ceil(bytes / PAGE);
}

/**
 * What the holder runs: for each line on its stdin, the job folder's free blocks, free inodes and
 * block size on its stdout. Measuring the folder is then a round trip on a connection already open instead of an
 * exec (a process the daemon sets up, about a hundred milliseconds). The line `clean` first empties the
 * folder (whoever owns what is in it: see holderSpec's `cleans`) and gives its root back its mode, then
 * answers `clean`, the same three figures and the root's mode. The line `put <n>` is followed by an
 * archive of n bytes, which the holder unpacks into the folder (keeping its owners and modes when it
 * runs as root), then answers `put` and tar's exit status. The line `get`, then a folder under the
 * mountpoint and a name in it, each on a line of its own, is answered with a tar archive of that
 * name in base64 on one line (empty when there is no such name), then `got` and tar's exit status
 * (`none` for no such name). The holder stops when that
 * connection closes, so a worker that dies takes its holders' mounts down with it; the reaper
 * removes the stopped containers and their volumes.
 */
const HOLDER_SCRIPT = [
  'exec 4>&1; while read -r line; do case "$line" in',
  'clean) find "$0" -mindepth 1 -delete 2>/dev/null; chmod 0755 "$0";',
  'echo "clean $(stat -f -c "%f %d %S" "$0") $(stat -c %a "$0")";;',
  // Whatever tar leaves unread of the n bytes (GNU tar reads to the end; another might not) is read here, so that none of it is taken for a question.
  '"put "*) head -c "${line#put }" | { tar -x -f - -C "$0" 2>/dev/null; s=$?; cat >/dev/null; echo "put $s"; };;',
  // tar's status comes back through fd 3 once base64, which writes straight to the holder's stdout (fd 4), has ended.
  'get) read -r d; read -r b; if [ -e "$0/$d/$b" ] || [ -L "$0/$d/$b" ]; then',
  's=$( { { tar -c -f - --sort=name -C "$0/$d" -- "$b" 2>/dev/null; echo $? >&3; } | base64 -w 0 >&4; } 3>&1 ); echo; echo "got $s";',
  'else echo; echo "got none"; fi;;',
  '*) stat -f -c "%f %d %S" "$0" || echo unreadable;;',
  'esac; done',
].join(' ');

/**
 * A container that holds the job volume and answers how full it is; it runs nothing of the engine's.
 * A holder that `cleans` (a warm folder's, used again after its job) runs as root with two of the
 * capabilities Docker gives every root container by default, DAC_OVERRIDE and FOWNER, so that it can
 * remove whatever an engine left, whichever user the engine ran as and whatever modes it set; any
 * other holder runs as `nobody` with none.
 */
export function holderSpec(image: string, mountpoint: string, volumeName: string, labels: Record<string, string>, cleans = false): Docker.ContainerCreateOptions {
  return {
    Image: image,
    Entrypoint: ['/bin/sh', '-c', HOLDER_SCRIPT, mountpoint],
    Cmd: [],
    User: cleans ? '0:0' : DEFAULT_ENGINE_USER,
    Labels: labels,
    NetworkDisabled: true,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      ...(cleans ? { CapAdd: ['DAC_OVERRIDE', 'FOWNER'] } : {}),
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

export type HolderStream = NodeJS.ReadWriteStream & { destroy(): void };

/** A running holder and the attached connection through which it measures the job folder. */
export class Holder {
  private pending = '';
  private waiting?: { resolve(line: string): void; reject(error: Error): void };
  /** Where the line being received goes, while a `get` answers with its archive. */
  private sink?: Base64Sink;
  /** The questions asked so far, one after another: the holder answers in order. */
  private turn: Promise<unknown> = Promise.resolve();
  private ended = false;
  /** Told once when the holder stops (its connection closes): the pool drops a ready folder then. */
  onEnd?: () => void;

  constructor(readonly container: Docker.Container, private readonly stream: HolderStream) {
    const stdout = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        // An archive being received slows the connection down to the pace its reader takes it at.
        const drained = this.receive(chunk.toString('latin1'));
        if (drained) drained.then(() => done(), () => done());
        else done();
      },
    });
    demux(stream, stdout, new PassThrough().resume())
      .catch(() => undefined)
      .finally(() => {
        this.ended = true;
        this.waiting?.reject(new DockerUnavailableError('Docker failed while measuring the job folder: the holder\'s connection closed. Is the Docker daemon running (docker info)?'));
        this.waiting = undefined;
        this.onEnd?.();
      });
  }

  /** Whether the holder has stopped (or its connection closed), which unmounts the job folder. */
  get stopped(): boolean {
    return this.ended;
  }

  /**
   * Whether the engine used up the job folder's space or inodes: for a folder made for the job, none
   * left; for a warm folder, no more left than the room it has beyond the job's own cap (`spare`), so
   * an engine is reported over its output limit at the same point whichever folder it wrote in.
   */
  async folderFull(spare: { bytes: number; inodes: number }): Promise<boolean> {
    const text = await this.ask(MEASURE_TIMEOUT_MS);
    const [freeBlocks, freeInodes, blockSize] = text.trim().split(/\s+/).map(Number);
    if (![freeBlocks, freeInodes, blockSize].every(Number.isFinite)) throw new Error(`cannot read the job folder's free space from ${JSON.stringify(text)}`);
    return freeBlocks * blockSize <= spare.bytes || freeInodes <= spare.inodes;
  }

  /** The folder's free blocks, free inodes and block size, as the holder prints them, within `ms`. */
  async figures(ms = MEASURE_TIMEOUT_MS): Promise<string> {
    const text = (await this.ask(ms)).trim();
    if (!/^\d+ \d+ \d+$/.test(text)) throw new Error(`cannot read the job folder's free space from ${JSON.stringify(text)}`);
    return text;
  }

  /**
   * Empties the folder and gives its root back mode 0755, then tells whether it is as it was made:
   * `fresh` is what `figures` answered then. A tmpfs gets every block and inode back only when
   * nothing is left in it, so anything the holder could not remove shows in the figures.
   */
  async clean(fresh: string): Promise<boolean> {
    return (await this.ask(MEASURE_TIMEOUT_MS, 'clean')).trim() === `clean ${fresh} 755`;
  }

  /**
   * Unpacks a tar archive into the folder through the holder's stdin: the job's input, for a holder
   * that runs as root (a warm folder's, see holderSpec), so that what it unpacks keeps the archive's
   * owner (root) and modes. A round trip on the open connection instead of the archive API's.
   */
  async put(archive: Buffer): Promise<void> {
    const answer = (await this.ask(MEASURE_TIMEOUT_MS, `put ${archive.length}`, archive)).trim();
    if (answer !== 'put 0') throw new Error(`the job folder's holder could not unpack the input (${answer.startsWith('put ') ? `tar exited with ${answer.slice(4)}` : JSON.stringify(answer)})`);
  }

  /**
   * Copies `base`, in the folder `dir` under the mountpoint, out through the holder's stdout: a tar
   * archive as the archive API would give it (its entries named from `base`, in name order, so that
   * the output limit cuts the same files). `archive` streams it;
   * `found` resolves once the holder said tar ended well, to false when there is no such name. Only a
   * holder that runs as root with DAC_OVERRIDE (a warm folder's) reads whatever modes the engine set.
   */
  get(dir: string, base: string, ms: number): { archive: Readable; found: Promise<boolean> } {
    const archive = new PassThrough();
    const sink = new Base64Sink(archive);
    const found = this.ask(ms, `get\n${dir}\n${base}`, undefined, sink).then((answer) => {
      const status = answer.trim().replace(/^got /, '');
      if (status === 'none') return false;
      if (status !== '0') throw new Error(`the job folder's holder could not copy the output out (${answer.startsWith('got ') ? `tar exited with ${status}` : JSON.stringify(answer)})`);
      return true;
    });
    found.catch((error) => archive.destroy(error));
    return { archive, found };
  }

  close(): void {
    this.stream.destroy();
  }

  /** Lets the process exit while only this holder's connection is open (a ready warm folder). */
  unref(): void {
    (this.stream as { unref?: () => void }).unref?.();
  }

  /** Asks once the questions before have been answered (or given up on); see askNow. */
  private ask(ms: number, line = '', payload?: Buffer, sink?: Base64Sink): Promise<string> {
    const asked = this.turn.then(() => this.askNow(ms, line, payload, sink));
    this.turn = asked.catch(() => undefined);
    return asked;
  }

  /**
   * Writes `line` (and `payload`) to the holder and resolves with its answer line; with `sink`, the
   * line before the answer goes to it as it comes. Within `ms`, or the holder is taken as not answering.
   */
  private askNow(ms: number, line: string, payload?: Buffer, sink?: Base64Sink): Promise<string> {
    if (this.ended) return Promise.reject(new DockerUnavailableError('the job folder holder stopped before the folder was measured'));
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        if (this.sink === sink) this.sink = undefined;
        sink?.fail(error);
        reject(error);
      };
      const timer = setTimeout(() => {
        this.waiting = undefined;
        fail(new DockerUnavailableError(`the job folder holder did not answer within ${ms / 1000} s`));
      }, ms);
      this.waiting = {
        resolve: (answer) => { clearTimeout(timer); resolve(answer); },
        reject: fail,
      };
      this.sink = sink;
      this.stream.write(`${line}\n`);
      if (payload) this.stream.write(payload);
    });
  }

  /**
   * Takes what the holder printed: the line a `get` streams goes to its sink (the promise, when there
   * is one, resolves once the sink can take more); every other line answers the question waiting.
   */
  private receive(text: string): Promise<void> | undefined {
    let drained: Promise<void> | undefined;
    while (text.length) {
      const sink = this.sink;
      if (sink) {
        const end = text.indexOf('\n');
        if (!sink.write(end < 0 ? text : text.slice(0, end))) drained = sink.drained();
        if (end < 0) break;
        this.sink = undefined;
        sink.end();
        text = text.slice(end + 1);
        continue;
      }
      // The holder prints one short line per question; anything longer is not an answer.
      this.pending = (this.pending + text).slice(-1024);
      text = '';
      const end = this.pending.indexOf('\n');
      if (end < 0) break;
      const line = this.pending.slice(0, end);
      text = this.pending.slice(end + 1);
      this.pending = '';
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.resolve(line);
    }
    return drained;
  }
}

/** Decodes a line of base64 into `out` as it comes, whole groups of four characters at a time. */
class Base64Sink {
  private carry = '';

  constructor(private readonly out: PassThrough) {}

  /** False when `out` wants no more until it drains. What comes after `out` was destroyed is dropped. */
  write(text: string): boolean {
    if (this.out.destroyed) return true;
    const all = this.carry + text;
    const whole = all.length - (all.length % 4);
    this.carry = all.slice(whole);
    return whole === 0 || this.out.write(Buffer.from(all.slice(0, whole), 'base64'));
  }

  drained(): Promise<void> {
    if (this.out.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.out.off('drain', done);
        this.out.off('close', done);
        resolve();
      };
      this.out.on('drain', done);
      this.out.on('close', done);
    });
  }

  end(): void {
    if (this.out.destroyed) return;
    if (this.carry) this.out.write(Buffer.from(this.carry, 'base64'));
    this.out.end();
  }

  fail(error: Error): void {
    this.out.destroy(error);
  }
}

/**
 * A warm job folder: its volume (named as the slot), its running, attached holder, and the figures
 * the holder gave when the folder was new and empty (`fresh`), against which it is checked each time
 * it is emptied and taken.
 */
export interface PoolSlot {
  name: string;
  holder: Holder;
  shape: FolderShape;
  fresh: string;
}

/**
 * Ready warm folders a shape keeps at most: a folder comes back to its pool after its job, so a shape
 * holds about as many as its jobs run at once plus the ready ones; past this many the folder is removed.
 */
export const POOL_MAX_READY = 16;

export interface JobFolderPoolOptions {
  /** Folders kept ready (or being made) per shape. */
  ready: number;
  /** A shape no job took a folder of for this long loses its ready folders. */
  idleMs: number;
  make(shape: FolderShape): Promise<PoolSlot>;
  discard(slot: PoolSlot): void;
  track(work: Promise<void>): void;
  log: Logger;
}

/**
 * Warm job folders by shape. A folder goes to one job at a time: taking one (or finding none) starts
 * making new ones in the background, up to `ready` per shape counting those being made, and only for
 * shapes a job asked for; a folder its job is done with comes back (`give`) once the runner emptied
 * it. A ready folder whose holder stops is dropped at once (the holder's connection closes), and one
 * that does not answer when taken, or answers that it is not empty, is dropped then.
 */
export class JobFolderPool {
  private readonly shapes = new Map<string, { ready: PoolSlot[]; making: number; idle?: NodeJS.Timeout }>();
  private closed = false;

  constructor(private readonly options: JobFolderPoolOptions) {}

  /** A ready folder of `shape` that `alive` confirms, or undefined; either way the shape is filled again. */
  async take(shape: FolderShape, alive: (slot: PoolSlot) => Promise<boolean>): Promise<PoolSlot | undefined> {
    if (this.closed) return undefined;
    const entry = this.touch(shape);
    try {
      // Bounded: at most `ready` folders wait per shape, and each is taken out before it is asked.
      for (let slot = entry.ready.shift(); slot; slot = entry.ready.shift()) {
        slot.holder.onEnd = undefined;
        if (await alive(slot)) return slot;
        this.options.discard(slot);
      }
      return undefined;
    } finally {
      this.fill(shape);
    }
  }

  /**
   * Takes back a folder a job used, emptied since: ready again unless its shape was dropped meanwhile
   * (idle, or the pool closed), its holder stopped, or the shape already has POOL_MAX_READY ready.
   */
  give(slot: PoolSlot): void {
    const entry = this.shapes.get(slot.shape.key);
    if (this.closed || !entry || slot.holder.stopped || entry.ready.length >= POOL_MAX_READY) {
      this.options.discard(slot);
      return;
    }
    this.keep(entry, slot);
  }

  /** Makes no more folders and removes the ready ones; those being made are removed once made. */
  close(): void {
    this.closed = true;
    for (const key of [...this.shapes.keys()]) this.drop(key);
  }

  /** The shape's entry, created on first use, with its idle timer started again. */
  private touch(shape: FolderShape) {
    let entry = this.shapes.get(shape.key);
    if (!entry) {
      entry = { ready: [], making: 0 };
      this.shapes.set(shape.key, entry);
    }
    clearTimeout(entry.idle);
    entry.idle = setTimeout(() => this.drop(shape.key), this.options.idleMs);
    entry.idle.unref();
    return entry;
  }

  private fill(shape: FolderShape): void {
    const entry = this.shapes.get(shape.key);
    if (!entry) return;
    while (!this.closed && entry.ready.length + entry.making < this.options.ready) {
      entry.making += 1;
      this.options.track(this.options.make(shape).then((slot) => {
        entry.making -= 1;
        // Made for a shape dropped meanwhile, or for a runner closing, or already stopped: not kept.
        if (this.closed || this.shapes.get(shape.key) !== entry || slot.holder.stopped) {
          this.options.discard(slot);
          return;
        }
        this.keep(entry, slot);
      }, (error) => {
        entry.making -= 1;
        // Not tried again until the next job of the shape: a Docker that is down is not hammered.
        this.options.log.warn(`docker: cannot make a warm job folder (${shape.mountpoint}, ${shape.size} bytes): ${(error as Error).message}`);
      }));
    }
  }

  /** Puts a folder among its shape's ready ones, dropped from them as soon as its holder stops. */
  private keep(entry: { ready: PoolSlot[] }, slot: PoolSlot): void {
    slot.holder.onEnd = () => {
      slot.holder.onEnd = undefined;
      const at = entry.ready.indexOf(slot);
      if (at >= 0) entry.ready.splice(at, 1);
      this.options.discard(slot);
    };
    entry.ready.push(slot);
  }

  private drop(key: string): void {
    const entry = this.shapes.get(key);
    if (!entry) return;
    this.shapes.delete(key);
    clearTimeout(entry.idle);
    for (const slot of entry.ready.splice(0)) {
      slot.holder.onEnd = undefined;
      this.options.discard(slot);
    }
  }
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
