import { z } from 'zod';
import { CORTEX_ATTACHMENT, type CortexInput, CortexOutput, readTaxonomies } from '../../core/cortex';
import type { EngineManifest } from '../../core/engine-manifest';
import { subjectType } from '../../core/investigation';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineRun, InputEntry, OutputFile } from '../../infra/engine-runner';
import { detectBlobType } from '../../infra/file-type';
import type { EngineRequest, Protocol } from './protocol';
import { baseOutcome, bufferStream, fail, logExcerpt, logsOf, READ_ONLY, READ_ONLY_DIR, succeed, toRef } from './shared';

const CORTEX_JOB = '/job';

/**
 * TheHive Cortex's job folder, so existing Cortex analyzer images run unchanged: `/job/input/input.json`
 * (and the file beside it) in, `/job/output/output.json` out, `/job` as the image's argument.
 */
export const cortexProtocol: Protocol = {
  name: 'cortex',

  prepare(manifest, request, input, env) {
    const json = Buffer.from(JSON.stringify(cortexInput(manifest, request)));
    const entries: InputEntry[] = [
      { name: 'input', type: 'directory', mode: READ_ONLY_DIR },
      { name: 'output', type: 'directory', mode: 0o777 },
      { name: 'input/input.json', type: 'file', mode: READ_ONLY, size: json.length, open: () => bufferStream(json) },
      { ...input, name: `input/${CORTEX_ATTACHMENT}` },
    ];
    return { env, entrypoint: manifest.command, cmd: [CORTEX_JOB], mountpoint: CORTEX_JOB, input: entries, outputPath: 'output', imageSetup: true };
  },

  /** A missing or unreadable output.json, or `success: false`, is the engine's failure, whatever its exit code. */
  async interpret(manifest, run, blobs) {
    const base = baseOutcome(run);
    const output = run.outputs.find((file) => file.path === 'output.json');
    if (!output) {
      const why = run.exitCode === 0 ? 'exited' : `exited with code ${run.exitCode}`;
      return fail(base, `engine ${manifest.name} ${why} without writing /job/output/output.json: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
    }
    const text = (await blobs.read(output.blob.sha256)).toString('utf8');
    let parsed: CortexOutput;
    try {
      parsed = CortexOutput.parse(JSON.parse(text));
    } catch (error) {
      const reason = error instanceof z.ZodError ? error.issues.map((i) => `${i.path.join('.') || 'output'}: ${i.message}`).join('; ') : (error as Error).message;
      return fail(base, `engine ${manifest.name} wrote an output.json Docket cannot read (${reason}); it starts: ${JSON.stringify(text.slice(0, 120))}`, await logsOf(run, blobs));
    }
    const result = toRef(output.blob, 'output.json', 'application/json');
    if (!parsed.success) return { ...fail(base, parsed.errorMessage as string, await logsOf(run, blobs)), result };
    return {
      ...succeed(base, result, Buffer.from(text.slice(0, 160))),
      taxonomies: readTaxonomies(parsed.summary?.taxonomies ?? []),
      artifacts: await artifactsOf(parsed, run, blobs),
    };
  },
};

function cortexInput(manifest: EngineManifest, request: EngineRequest): CortexInput {
  const doc: CortexInput = {
    dataType: subjectType(request.subject),
    tlp: request.tlp,
    pap: request.pap,
    message: request.message ?? '',
    parameters: { ...(request.parameters ?? {}), ...(request.args ? { args: request.args } : {}) },
    config: { ...manifest.config, ...markingConfig(manifest) },
  };
  if (request.subject.kind === 'file') {
    doc.file = CORTEX_ATTACHMENT;
    doc.filename = request.subject.file.filename ?? CORTEX_ATTACHMENT;
    doc.contentType = request.subject.file.contentType ?? 'application/octet-stream';
  } else if (request.subject.kind === 'object') {
    // TheHive's object itself, as Cortex hands it to a responder (cortexutils' Responder reads it with get_data()).
    doc.data = request.subject.object.data;
  } else {
    doc.data = request.subject.observable.data;
  }
  return doc;
}

/**
 * Cortex's own keys for an analyzer's TLP and PAP limits, which cortexutils checks again inside the
 * container. Docket has already refused a job above them, so an engine never sees one.
 */
function markingConfig(manifest: EngineManifest) {
  return {
    check_tlp: manifest.maxTlp !== undefined,
    max_tlp: manifest.maxTlp ?? 4,
    check_pap: manifest.maxPap !== undefined,
    max_pap: manifest.maxPap ?? 3,
  };
}

/**
 * The reported artifacts, a file artifact pointing at the output file of that name, its type detected
 * from its bytes so that the next round sends it only to the engines that take it.
 */
async function artifactsOf(parsed: Extract<CortexOutput, { success: true }>, run: EngineRun, blobs: BlobStore) {
  const files = new Map<string, OutputFile>(run.outputs.map((file) => [file.path, file]));
  return Promise.all(parsed.artifacts.map(async (artifact) => {
    const file = artifact.file ? files.get(artifact.file) : undefined;
    return {
      type: artifact.dataType,
      data: artifact.data,
      file: file ? toRef(file.blob, artifact.filename ?? artifact.file, await detectBlobType(blobs, file.blob.sha256)) : undefined,
      message: artifact.message,
      tags: artifact.tags,
    };
  }));
}
