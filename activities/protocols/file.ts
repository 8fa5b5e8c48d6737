import type { EngineRun } from '../../infra/engine-runner';
import type { Protocol } from './protocol';
import { baseOutcome, bufferStream, exitFailure, fail, logExcerpt, logsOf, plainLayout, succeed, toRef } from './shared';

const RESULT = 'result';

/**
 * Menagerie's: the input file at `<mountpoint>/<inputfilename>`, the result the file
 * `<mountpoint>/result` (bytes, served by `GET /link/<id>`).
 */
export const fileProtocol: Protocol = {
  name: 'file',

  prepare(manifest, request, input, env) {
    const layout = plainLayout(manifest, request, input, env, []);
    // The volume root stays root-owned (Docker ignores a mode for it), so the result file is created
    // here, empty and writable by whatever user the engine runs as.
    layout.input.push({ name: RESULT, type: 'file', mode: 0o666, size: 0, open: () => bufferStream(Buffer.alloc(0)) });
    return { ...layout, outputPath: RESULT };
  },

  async interpret(manifest, run, blobs) {
    const base = baseOutcome(run);
    const exited = await exitFailure(manifest, run, blobs, base);
    if (exited) return exited;
    const result = resultFile(run);
    if (!result || result.blob.size === 0) {
      return fail(base, `engine ${manifest.name} wrote no ${manifest.mountpoint}/result: ${await logExcerpt(run, blobs)}`, await logsOf(run, blobs));
    }
    return succeed(base, toRef(result.blob, RESULT), await blobs.read(result.blob.sha256, 80));
  },

  /** The first part of a result cut at the output limit is still worth serving. */
  partialResult: resultFile,
};

function resultFile(run: EngineRun) {
  return run.outputs.find((output) => output.path === RESULT);
}
