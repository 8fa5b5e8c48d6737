import type { Readable } from 'node:stream';
import type { EngineManifest } from '../core/engine-manifest';
import type { BlobStore, PutResult } from './blob-store';
import type { Logger } from './log';

/**
 * What every engine runner shares, whatever runs the engine (a Docker container, a local process,
 * later a Kubernetes pod). As in TheHive Cortex's JobRunnerSrv, a protocol lays out the job folder
 * once, a runner runs it, and the protocol reads the report once: runners know nothing of protocols.
 * It lives in infra/ because the gateway asks runners too (/readyz, /v1/engines) and may not import
 * activities/.
 */

/** A file or folder placed in the job folder before the engine starts (paths relative to the mount). */
export interface InputEntry {
  name: string;
  type: 'file' | 'directory';
  mode: number;
  /** For files: the content and its exact size. */
  size?: number;
  open?: () => Promise<Readable> | Readable;
}

/** One run of one engine, as a protocol laid it out and the activity completed it. */
export interface EngineJob {
  engine: string;
  image: string;
  /** The identity the runner already resolved for the result cache (the image ID), so it is not asked twice. */
  imageId?: string;
  job: string;
  attempt: number;
  entrypoint?: string[];
  cmd: string[];
  env: Record<string, string>;
  user?: string;
  /** Where the job folder is mounted; also the working directory, unless `imageSetup`. */
  mountpoint: string;
  /**
   * Run as Cortex runs its images (`docker run -v <job>:/job <image> /job`): in the image's own
   * working directory, and as the image's own user when it names a non-root one and `user` is unset.
   * Cortex-Analyzers images start a relative entry point under `WORKDIR /worker`.
   */
  imageSetup?: boolean;
  input: InputEntry[];
  /** Path under the mountpoint copied out after the run (a file or a folder); none for stdout engines. */
  outputPath?: string;
  limits: { memory: number; cpus: number; pids: number; output: number; tmp: number };
  network: 'none' | 'egress';
  /** Named volumes shared across jobs (created on first use). */
  volumes?: Array<{ name: string; target: string; readonly: boolean }>;
  timeoutMs: number;
  signal?: AbortSignal;
  heartbeat?: () => void;
}

export interface OutputFile {
  /** Path relative to the copied-out folder (or the file's own name). */
  path: string;
  blob: PutResult;
}

/** What a run left behind, for the protocol to read. */
export interface EngineRun {
  /** What ran: the image ID, or `process:<command>` for a local process. */
  imageId: string;
  exitCode: number;
  oomKilled: boolean;
  stdout: PutResult;
  stderr: PutResult;
  outputs: OutputFile[];
  /** Some output was cut at `limits.output`. */
  truncated: boolean;
  /** The job folder ran out of space (or inodes): the engine tried to write past its output limit. */
  jobFolderFull: boolean;
  durationMs: number;
}

/**
 * An engine's output files, stored as they stream out, all of them together capped at the engine's
 * output limit: past it each file keeps its first bytes only and the run is flagged truncated.
 */
export class OutputCollector {
  readonly outputs: OutputFile[] = [];
  truncated = false;
  private budget: number;

  constructor(private readonly blobs: BlobStore, limit: number) {
    this.budget = limit;
  }

  async add(path: string, source: Readable | AsyncIterable<Uint8Array>): Promise<void> {
    const blob = await this.blobs.put(source, { limit: this.budget, truncate: true });
    this.budget -= blob.size;
    this.truncated ||= blob.truncated;
    this.outputs.push({ path, blob });
  }
}

/** Tells leftovers of a dead job from those of a live one; the reaper owns the policy, runners the listing. */
export interface ReapScope {
  /**
   * Whether a leftover carrying `owner` (`<host>:<pid>`, or none) and created at `createdMs` belongs to no
   * live job. `heldHere` is for runners that track their running jobs: whether a job still running in
   * this process holds the leftover (undefined when the runner cannot tell).
   */
  orphaned(owner: string | undefined, createdMs: number, heldHere?: boolean): boolean;
  log: Logger;
}

export interface Reaped {
  containers: string[];
  volumes: string[];
  folders: string[];
}

export interface EngineRunner {
  /** The manifest's `runner:` value this runner serves. */
  readonly kind: EngineManifest['runner'];
  /** How messages name what the runner talks to: `Docker`, `the process runner`. */
  readonly title: string;
  /** Runs one job to its end; throws the engine layer's failures (activities/errors.ts) on faults. */
  run(job: EngineJob): Promise<EngineRun>;
  /**
   * What the engine would run now, for the result cache and `GET /v1/engines`: the image ID, or the
   * command of a process engine. Undefined when it is missing (an image not built); throws when the
   * runner cannot be asked.
   */
  identify(manifest: EngineManifest): Promise<string | undefined>;
  /** Resolves with a short "answers" message when the runner can take jobs now; throws saying why not. */
  health(): Promise<string>;
  /** Readies what these engines need before their first job (Docker: the egress network); throws to be logged. */
  prepare(manifests: EngineManifest[]): Promise<void>;
  /** Removes what killed jobs left behind (containers, volumes, job folders) that `scope` calls orphaned. */
  reap(scope: ReapScope): Promise<Reaped>;
  /**
   * Whether a job of this process ended since the runner's last complete reap, so a removal that failed
   * then (Docker down) may have left something: the reaper passes again soon instead of at its next
   * full pass. Runners whose removals cannot fail that way leave it out.
   */
  reapDue?(): boolean;
  /**
   * Ends what the runner keeps between jobs (Docker: warm job folders) and waits for the removals still
   * under way (Docker removes a job's containers and volume after the job answered). A worker's graceful
   * stop calls it once its last job has answered; runners that keep nothing leave it out.
   */
  close?(): Promise<void>;
}

/** The runners one process has, by manifest `runner:` value. */
export class EngineRunners {
  private readonly byKind = new Map<string, EngineRunner>();

  constructor(runners: EngineRunner[]) {
    for (const runner of runners) {
      if (this.byKind.has(runner.kind)) throw new Error(`two engine runners for runner: ${runner.kind}; register each once`);
      this.byKind.set(runner.kind, runner);
    }
  }

  /** The runner for `runner:` value `kind`, or undefined when this process has none. */
  find(kind: string): EngineRunner | undefined {
    return this.byKind.get(kind);
  }

  list(): EngineRunner[] {
    return [...this.byKind.values()];
  }
}
