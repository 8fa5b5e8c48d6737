import { Readable } from 'node:stream';
import { z } from 'zod';
import { CORTEX_ATTACHMENT, type CortexInput, CortexOutput, readTaxonomies } from '../core/cortex';
import type { EngineManifest } from '../core/engine-manifest';
import type { BlobRef, EngineReport, Subject } from '../core/investigation';
import { summarize } from '../core/menagerie';
import { decodeStdout } from '../core/stdout-result';
import { formatBytes } from '../core/units';
import type { BlobStore } from '../infra/blob-store';
import type { ContainerJob, ContainerRun, InputEntry, OutputFile } from './docker-runner';

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

type Prepared = Omit<ContainerJob, 'attempt' | 'signal' | 'heartbeat'>;
type Outcome = Pick<EngineReport, 'status' | 'result' | 'summary' | 'truncated' | 'errorMessage' | 'taxonomies' | 'artifacts' | 'logs' | 'exitCode'>;

const LOG_EXCERPT_BYTES = 2048;
const READ_ONLY = 0o444;
const READ_ONLY_DIR = 0o555;
const MENAGERIE_RESULT = 'result';
/** 128 + SIGXFSZ: the process wrote past the fsize ulimit, which is the output limit. */
const EXIT_FILE_TOO_LARGE = 153;
const CORTEX_JOB = '/job';

/** Lays out the job volume and the command line for the engine's protocol. */
export function prepareJob(manifest: EngineManifest, request: EngineRequest, blobs: BlobStore): Prepared {
  const base = {
    engine: manifest.name,
    image: manifest.image,
    job: request.job,
    user: manifest.user,
    limits: manifest.limits,
    network: manifest.network,
    volumes: manifest.volumes,
    timeoutMs: manifest.timeout,
    env: { ...manifest.env, ...(request.env ?? {}) },
  };
  const input = inputFile(request.subject, blobs);
  if (manifest.protocol === 'cortex') {
    const doc = cortexInput(manifest, request);
    const json = Buffer.from(JSON.stringify(doc));
    const entries: InputEntry[] = [
      { name: 'input', type: 'directory', mode: READ_ONLY_DIR },
      { name: 'output', type: 'directory', mode: 0o777 },
      { name: 'input/input.json', type: 'file', mode: READ_ONLY, size: json.length, open: () => bufferStream(json) },
    ];
    if (input) entries.push({ ...input, name: `input/${CORTEX_ATTACHMENT}` });
    return {
      ...base,
      entrypoint: manifest.command,
      cmd: [CORTEX_JOB],
      mountpoint: CORTEX_JOB,
      input: entries,
      outputPath: 'output',
    };
  }
  const entries: InputEntry[] = [];
  if (input) entries.push({ ...input, name: manifest.inputfilename });
  // The volume root stays root-owned (Docker ignores a mode for it), so the result file is created
  // here, empty and writable by whatever user the engine runs as.
  if (manifest.protocol === 'file') entries.push({ name: MENAGERIE_RESULT, type: 'file', mode: 0o666, size: 0, open: () => bufferStream(Buffer.alloc(0)) });
  const inputPath = `${manifest.mountpoint.replace(/\/$/, '')}/${manifest.inputfilename}`;
  const env: Record<string, string> = {
    ...base.env,
    DOCKET_INPUT: inputPath,
    DOCKET_DATA_TYPE: request.subject.kind === 'file' ? 'file' : request.subject.observable.type,
    DOCKET_CONFIG: JSON.stringify(manifest.config),
  };
  if (request.subject.kind === 'observable') env.DOCKET_DATA = request.subject.observable.data;
  const defaultArgs = manifest.protocol === 'file' ? [] : [request.subject.kind === 'file' ? inputPath : request.subject.observable.data];
  const args = request.args?.length ? request.args : defaultArgs;
  return {
    ...base,
    env,
    entrypoint: manifest.command,
    // With no command and no args the image's own CMD runs.
    cmd: args.length || manifest.command ? args : (undefined as unknown as string[]),
    mountpoint: manifest.mountpoint,
    input: entries,
    outputPath: manifest.protocol === 'file' ? MENAGERIE_RESULT : undefined,
  };
}

function inputFile(subject: Subject, blobs: BlobStore): Omit<InputEntry, 'name'> | undefined {
  if (subject.kind === 'file') {
    const { sha256, size } = subject.file;
    return { type: 'file', mode: READ_ONLY, size, open: () => blobs.open(sha256) };
  }
  const data = Buffer.from(subject.observable.data);
  return { type: 'file', mode: READ_ONLY, size: data.length, open: () => bufferStream(data) };
}

function cortexInput(manifest: EngineManifest, request: EngineRequest): CortexInput {
  const doc: CortexInput = {
    dataType: request.subject.kind === 'file' ? 'file' : request.subject.observable.type,
    tlp: request.tlp,
    pap: request.pap,
    message: request.message ?? '',
    parameters: { ...(request.parameters ?? {}), ...(request.args ? { args: request.args } : {}) },
    config: { ...manifest.config, check_tlp: false, check_pap: false, max_tlp: 4, max_pap: 3 },
  };
  if (request.subject.kind === 'file') {
    doc.file = CORTEX_ATTACHMENT;
    doc.filename = request.subject.file.filename ?? CORTEX_ATTACHMENT;
    doc.contentType = request.subject.file.contentType ?? 'application/octet-stream';
  } else {
    doc.data = request.subject.observable.data;
  }
  return doc;
}

/** Reads what the container left, according to the engine's protocol. */
export async function interpret(manifest: EngineManifest, run: ContainerRun, blobs: BlobStore): Promise<Outcome> {
  const empty = { taxonomies: [], artifacts: [], truncated: run.truncated, exitCode: run.exitCode };
  if (run.oomKilled) {
    return fail(empty, `engine ${manifest.name} was killed: out of memory (limit ${formatBytes(manifest.limits.memory)})`, await logsOf(run, blobs));
  }
  // A full job folder is the same overrun spread over many files: the volume's cap stopped it.
  if (run.exitCode === EXIT_FILE_TOO_LARGE || run.jobFolderFull) {
    const kept = manifest.protocol === 'file' ? run.outputs.find((output) => output.path === MENAGERIE_RESULT) : undefined;
    return {
      ...fail(empty, `engine ${manifest.name} wrote past its output limit of ${formatBytes(manifest.limits.output)} and was stopped${kept ? '; the first part of its result is kept' : ''}`, await logsOf(run, blobs)),
      result: kept ? toRef(kept.blob, MENAGERIE_RESULT) : undefined,
      truncated: true,
    };
  }
  if (manifest.protocol === 'cortex') return interpretCortex(manifest, run, blobs, empty);
  if (run.exitCode !== 0) {
    return fail(empty, `engine ${manifest.name} exited with code ${run.exitCode}: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
  }
  if (manifest.protocol === 'file') {
    const result = run.outputs.find((output) => output.path === MENAGERIE_RESULT);
    if (!result || result.blob.size === 0) {
      return fail(empty, `engine ${manifest.name} wrote no ${manifest.mountpoint}/result: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
    }
    return succeed(empty, toRef(result.blob, MENAGERIE_RESULT), await blobs.read(result.blob.sha256, 80));
  }
  const raw = await blobs.read(run.stdout.sha256);
  const decoded = decodeStdout(raw);
  const stored = decoded.encoding === 'base64' ? await blobs.putBuffer(decoded.bytes) : run.stdout;
  return succeed(empty, toRef(stored, 'stdout'), Buffer.from(decoded.bytes.subarray(0, 80)));
}

async function interpretCortex(manifest: EngineManifest, run: ContainerRun, blobs: BlobStore, empty: Omit<Outcome, 'status' | 'summary'>): Promise<Outcome> {
  const output = run.outputs.find((file) => file.path === 'output.json');
  if (!output) {
    const why = run.exitCode === 0 ? 'exited' : `exited with code ${run.exitCode}`;
    return fail(empty, `engine ${manifest.name} ${why} without writing /job/output/output.json: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
  }
  const text = (await blobs.read(output.blob.sha256)).toString('utf8');
  let parsed: CortexOutput;
  try {
    parsed = CortexOutput.parse(JSON.parse(text));
  } catch (error) {
    const reason = error instanceof z.ZodError ? error.issues.map((i) => `${i.path.join('.') || 'output'}: ${i.message}`).join('; ') : (error as Error).message;
    return fail(empty, `engine ${manifest.name} wrote an output.json Docket cannot read (${reason}); it starts: ${JSON.stringify(text.slice(0, 120))}`, await logsOf(run, blobs));
  }
  const result = toRef(output.blob, 'output.json', 'application/json');
  if (!parsed.success) return { ...fail(empty, parsed.errorMessage as string, await logsOf(run, blobs)), result };
  const files = new Map<string, OutputFile>(run.outputs.map((file) => [file.path, file]));
  const artifacts = parsed.artifacts.map((artifact) => {
    const file = artifact.file ? files.get(artifact.file) : undefined;
    return {
      type: artifact.dataType,
      data: artifact.data,
      file: file ? toRef(file.blob, artifact.filename ?? artifact.file) : undefined,
      message: artifact.message,
      tags: artifact.tags,
    };
  });
  return {
    ...succeed(empty, result, Buffer.from(text.slice(0, 160))),
    taxonomies: readTaxonomies(parsed.summary?.taxonomies ?? []),
    artifacts,
  };
}

function succeed(base: Omit<Outcome, 'status' | 'summary'>, result: BlobRef, head: Buffer): Outcome {
  return { ...base, status: 'success', result, summary: summarize(head) };
}

function fail(base: Omit<Outcome, 'status' | 'summary'>, message: string, logs?: BlobRef): Outcome {
  return { ...base, status: 'failure', errorMessage: message, summary: summarize(message), logs };
}

function toRef(blob: { sha256: string; size: number }, filename?: string, contentType?: string): BlobRef {
  return { sha256: blob.sha256, size: blob.size, filename, contentType };
}

/** The container's stderr then stdout, kept as one blob for a person to read. */
async function logsOf(run: ContainerRun, blobs: BlobStore): Promise<BlobRef | undefined> {
  if (run.stdout.size + run.stderr.size === 0) return undefined;
  const [stderr, stdout] = await Promise.all([blobs.read(run.stderr.sha256), blobs.read(run.stdout.sha256)]);
  const stored = await blobs.putBuffer(Buffer.concat([stderr, stdout]));
  return toRef(stored, 'logs.txt', 'text/plain');
}

async function logExcerpt(run: ContainerRun, blobs: BlobStore): Promise<string> {
  const [stderr, stdout] = await Promise.all([
    blobs.read(run.stderr.sha256, LOG_EXCERPT_BYTES),
    blobs.read(run.stdout.sha256, LOG_EXCERPT_BYTES),
  ]);
  const text = (stderr.length ? stderr : stdout).toString('utf8').trim();
  return text ? `logs: ${text.slice(-LOG_EXCERPT_BYTES)}` : 'it printed nothing';
}

function bufferStream(buffer: Buffer): Readable {
  return Readable.from([buffer]);
}
