import type { EngineManifest } from '../../core/engine-manifest';
import { type BlobRef, MAX_INLINE_RAW, type Subject } from '../../core/investigation';
import { formatBytes } from '../../core/units';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineJob, EngineRun } from '../../infra/engine-runner';
import { cortexProtocol } from './cortex';
import { fileProtocol } from './file';
import type { EngineRequest, InputFile, Outcome, Protocol } from './protocol';
import { baseOutcome, bufferStream, fail, logsOf, READ_ONLY, toRef } from './shared';
import { stdoutProtocol } from './stdout';

export type { EngineRequest, Outcome, Protocol } from './protocol';

/** Every protocol, by manifest `protocol:` value: the one place a new protocol is registered. */
const PROTOCOLS: Record<EngineManifest['protocol'], Protocol> = {
  cortex: cortexProtocol,
  file: fileProtocol,
  stdout: stdoutProtocol,
};

/** 128 + SIGXFSZ: the process wrote past the fsize ulimit, which is the output limit. */
const EXIT_FILE_TOO_LARGE = 153;

export function protocolOf(manifest: EngineManifest): Protocol {
  return PROTOCOLS[manifest.protocol];
}

/** A job ready for any runner: what the manifest fixes, and the layout the engine's protocol chooses. */
export function prepareJob(manifest: EngineManifest, request: EngineRequest, blobs: BlobStore): Omit<EngineJob, 'attempt' | 'signal' | 'heartbeat'> {
  const env = { ...manifest.env, ...(request.env ?? {}) };
  return {
    engine: manifest.name,
    image: manifest.image,
    job: request.job,
    user: manifest.user,
    limits: manifest.limits,
    network: manifest.network,
    volumes: manifest.volumes,
    timeoutMs: manifest.timeout,
    ...protocolOf(manifest).prepare(manifest, request, inputFile(request.subject, blobs), env),
  };
}

/**
 * Reads what the run left, once, whichever runner ran it. An out-of-memory kill and an output
 * overrun end any engine the same way; the rest is the protocol's to read.
 */
export async function interpret(manifest: EngineManifest, run: EngineRun, blobs: BlobStore): Promise<Outcome> {
  return nameTheRest(await read(manifest, run, blobs), run, blobs);
}

async function read(manifest: EngineManifest, run: EngineRun, blobs: BlobStore): Promise<Outcome> {
  const base = baseOutcome(run);
  if (run.oomKilled) {
    return fail(base, `engine ${manifest.name} was killed: out of memory (limit ${formatBytes(manifest.limits.memory)})`, await logsOf(run, blobs));
  }
  const protocol = protocolOf(manifest);
  // A full job folder is the same overrun spread over many files: the volume's cap stopped it.
  if (run.exitCode === EXIT_FILE_TOO_LARGE || run.jobFolderFull) {
    const kept = protocol.partialResult?.(run);
    return {
      ...fail(base, `engine ${manifest.name} wrote past its output limit of ${formatBytes(manifest.limits.output)} and was stopped${kept ? '; the first part of its result is kept' : ''}`, await logsOf(run, blobs)),
      result: kept ? toRef(kept.blob, kept.path) : undefined,
      truncated: true,
    };
  }
  return protocol.interpret(manifest, run, blobs);
}

/**
 * Names in the outcome every blob the run stored that it does not name already (`raw`): stdout and
 * stderr, which a failure keeps only combined as `logs`, and output files the protocol did not take.
 * Without this they belonged to no report. Empty streams are the one empty blob every run shares.
 */
async function nameTheRest(outcome: Outcome, run: EngineRun, blobs: BlobStore): Promise<Outcome> {
  const named = new Set<string>();
  for (const ref of [outcome.result, outcome.logs, ...outcome.artifacts.map((artifact) => artifact.file)]) if (ref) named.add(ref.sha256);
  const rest: BlobRef[] = [];
  const add = (ref: BlobRef) => {
    if (ref.size === 0 || named.has(ref.sha256)) return;
    named.add(ref.sha256);
    rest.push(ref);
  };
  add(toRef(run.stdout, 'stdout', 'text/plain'));
  add(toRef(run.stderr, 'stderr', 'text/plain'));
  for (const file of run.outputs) add(toRef(file.blob, file.path));
  if (!rest.length) return outcome;
  if (rest.length <= MAX_INLINE_RAW) return { ...outcome, raw: rest };
  const list = await blobs.putBuffer(JSON.stringify(rest));
  return { ...outcome, raw: rest.slice(0, MAX_INLINE_RAW), rawRef: toRef(list, 'raw.json', 'application/json') };
}

/** The subject as the engine's input file: the uploaded file's blob, the observable's data, or a TheHive object's JSON. */
function inputFile(subject: Subject, blobs: BlobStore): InputFile {
  if (subject.kind === 'file') {
    const { sha256, size } = subject.file;
    return { type: 'file', mode: READ_ONLY, size, open: () => blobs.open(sha256) };
  }
  const data = Buffer.from(subject.kind === 'object' ? JSON.stringify(subject.object.data) : subject.observable.data);
  return { type: 'file', mode: READ_ONLY, size: data.length, open: () => bufferStream(data) };
}
