import { decodeStdout } from '../../core/stdout-result';
import type { Protocol } from './protocol';
import { baseOutcome, exitFailure, fail, logsOf, plainInputPath, plainLayout, succeed, toRef } from './shared';

/** CloudPassage's: the result is what the engine prints, read as its manifest's `stdout:` says (text, json or base64). */
export const stdoutProtocol: Protocol = {
  name: 'stdout',

  /** Without args of its own the engine gets the input on its command line: the file's path, or the observable. */
  prepare(manifest, request, input, env) {
    const subject = request.subject;
    const argument = subject.kind === 'file' ? plainInputPath(manifest) : subject.kind === 'observable' ? subject.observable.data : JSON.stringify(subject.object.data);
    return plainLayout(manifest, request, input, env, [argument]);
  },

  async interpret(manifest, run, blobs) {
    const base = baseOutcome(run);
    const exited = await exitFailure(manifest, run, blobs, base);
    if (exited) return exited;
    const decoded = decodeStdout(await blobs.read(run.stdout.sha256), manifest.stdout);
    if (!decoded.ok) return fail(base, `engine ${manifest.name} ${decoded.error}`, await logsOf(run, blobs));
    const stored = decoded.decoded ? await blobs.putBuffer(decoded.bytes) : run.stdout;
    return succeed(base, toRef(stored, 'stdout', decoded.contentType), Buffer.from(decoded.bytes.subarray(0, 80)));
  },
};
