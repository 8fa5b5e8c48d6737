import { Readable } from 'node:stream';
import type { EngineManifest } from '../../core/engine-manifest';
import { type BlobRef, subjectType } from '../../core/investigation';
import { summarize } from '../../core/menagerie';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineRun } from '../../infra/engine-runner';
import type { EngineRequest, InputFile, JobLayout, Outcome } from './protocol';

/** What the protocols share: job-folder modes, the plain command line, and the report's wording. */

export const READ_ONLY = 0o444;
export const READ_ONLY_DIR = 0o555;
const LOG_EXCERPT_BYTES = 2048;

export type BaseOutcome = Omit<Outcome, 'status' | 'summary'>;

/**
 * The layout of the protocols that predate Cortex's job folder: the input file at
 * `<mountpoint>/<inputfilename>`, the subject in `DOCKET_*` variables, and the request's args (or
 * the input itself) on the command line. With no command and no args the image's own CMD runs.
 */
export function plainLayout(manifest: EngineManifest, request: EngineRequest, input: InputFile, env: Record<string, string>, defaultArgs: string[]): JobLayout {
  const layoutEnv: Record<string, string> = {
    ...env,
    DOCKET_INPUT: plainInputPath(manifest),
    DOCKET_DATA_TYPE: subjectType(request.subject),
    DOCKET_CONFIG: JSON.stringify(manifest.config),
  };
  if (request.subject.kind === 'observable') layoutEnv.DOCKET_DATA = request.subject.observable.data;
  if (request.subject.kind === 'object') layoutEnv.DOCKET_DATA = JSON.stringify(request.subject.object.data);
  const args = request.args?.length ? request.args : defaultArgs;
  return {
    env: layoutEnv,
    entrypoint: manifest.command,
    cmd: args.length || manifest.command ? args : (undefined as unknown as string[]),
    mountpoint: manifest.mountpoint,
    input: [{ ...input, name: manifest.inputfilename }],
  };
}

/** Where the plain protocols put the input, as the engine sees it. */
export function plainInputPath(manifest: EngineManifest): string {
  return `${manifest.mountpoint.replace(/\/$/, '')}/${manifest.inputfilename}`;
}

/** A plain engine's non-zero exit is its own failure, kept with its logs; undefined when it exited 0. */
export async function exitFailure(manifest: EngineManifest, run: EngineRun, blobs: BlobStore, base: BaseOutcome): Promise<Outcome | undefined> {
  if (run.exitCode === 0) return undefined;
  return fail(base, `engine ${manifest.name} exited with code ${run.exitCode}: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
}

export function baseOutcome(run: EngineRun): BaseOutcome {
  return { taxonomies: [], artifacts: [], truncated: run.truncated, exitCode: run.exitCode };
}

export function succeed(base: BaseOutcome, result: BlobRef, head: Buffer): Outcome {
  return { ...base, status: 'success', result, summary: summarize(head) };
}

export function fail(base: BaseOutcome, message: string, logs?: BlobRef): Outcome {
  return { ...base, status: 'failure', errorMessage: message, summary: summarize(message), logs };
}

export function toRef(blob: { sha256: string; size: number }, filename?: string, contentType?: string): BlobRef {
  return { sha256: blob.sha256, size: blob.size, filename, contentType };
}

/** The engine's stderr then stdout, kept as one blob for a person to read. */
export async function logsOf(run: EngineRun, blobs: BlobStore): Promise<BlobRef | undefined> {
  if (run.stdout.size + run.stderr.size === 0) return undefined;
  const [stderr, stdout] = await Promise.all([blobs.read(run.stderr.sha256), blobs.read(run.stdout.sha256)]);
  const stored = await blobs.putBuffer(Buffer.concat([stderr, stdout]));
  return toRef(stored, 'logs.txt', 'text/plain');
}

export async function logExcerpt(run: EngineRun, blobs: BlobStore): Promise<string> {
  const [stderr, stdout] = await Promise.all([
    blobs.read(run.stderr.sha256, LOG_EXCERPT_BYTES),
    blobs.read(run.stdout.sha256, LOG_EXCERPT_BYTES),
  ]);
  const text = (stderr.length ? stderr : stdout).toString('utf8').trim();
  return text ? `logs: ${text.slice(-LOG_EXCERPT_BYTES)}` : 'it printed nothing';
}

export function bufferStream(buffer: Buffer): Readable {
  return Readable.from([buffer]);
}
