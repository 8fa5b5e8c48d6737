import type { EngineManifest } from '../../core/engine-manifest';
import type { EngineReport, Subject } from '../../core/investigation';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineJob, EngineRun, InputEntry, OutputFile } from '../../infra/engine-runner';

/** What an engine job is asked, beyond the manifest. */
export interface EngineRequest {
  job: string;
  subject: Subject;
  tlp: number;
  pap: number;
  message?: string;
  args?: string[];
  parameters?: Record<string, unknown>;
  /** Extra container environment for this run (a scheduled task's); `${NAME}` expands on the worker. */
  env?: Record<string, string>;
}

/** The subject as one input file (the uploaded file, or the observable's data), before it is named. */
export type InputFile = Omit<InputEntry, 'name'>;

/** The part of a job a protocol decides: the job folder's layout, the command line and its environment. */
export type JobLayout = Pick<EngineJob, 'entrypoint' | 'cmd' | 'env' | 'mountpoint' | 'input' | 'outputPath' | 'imageSetup'>;

/** What a protocol reads from a run: the report's fields that depend on the engine's output. */
export type Outcome = Pick<EngineReport, 'status' | 'result' | 'summary' | 'truncated' | 'errorMessage' | 'taxonomies' | 'artifacts' | 'logs' | 'exitCode' | 'raw' | 'rawRef'>;

/**
 * How an engine is handed its input and how its output is read: TheHive's job folder (`cortex`),
 * Menagerie's mount point (`file`), CloudPassage's stdout (`stdout`). A protocol knows nothing of
 * the runner; every runner runs every protocol's jobs.
 */
export interface Protocol {
  /** The manifest's `protocol:` value. */
  readonly name: EngineManifest['protocol'];
  /** Lays out the job folder and the command line; `env` is the manifest's and the request's, already merged. */
  prepare(manifest: EngineManifest, request: EngineRequest, input: InputFile, env: Record<string, string>): JobLayout;
  /** Reads a run that ended on its own (no out-of-memory kill, no output overrun) into the report's fields. */
  interpret(manifest: EngineManifest, run: EngineRun, blobs: BlobStore): Promise<Outcome>;
  /** The output worth keeping from a run stopped at its output limit, if the protocol has one. */
  partialResult?(run: EngineRun): OutputFile | undefined;
}
