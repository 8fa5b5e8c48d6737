/**
 * What a `stdout` engine printed, read the way its manifest says (`stdout: text | json | base64`).
 * Nothing is guessed: a 32-character hex md5 looks like base64 too, and decoding it made garbage.
 * CloudPassage's tasks printed base64 and say so.
 */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export type StdoutMode = 'text' | 'json' | 'base64';

export type DecodedStdout =
  | { ok: true; bytes: Uint8Array; contentType: string; decoded: boolean }
  | { ok: false; error: string };

export function decodeStdout(raw: Uint8Array, mode: StdoutMode): DecodedStdout {
  if (mode === 'text') return { ok: true, bytes: raw, contentType: 'text/plain; charset=utf-8', decoded: false };
  const text = new TextDecoder('utf-8', { fatal: false }).decode(raw);
  if (mode === 'json') {
    try {
      JSON.parse(text);
    } catch (error) {
      return { ok: false, error: `printed something that is not JSON (${(error as Error).message}); it starts: ${JSON.stringify(text.slice(0, 80))}` };
    }
    return { ok: true, bytes: raw, contentType: 'application/json', decoded: false };
  }
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) {
    return { ok: false, error: `printed something that is not base64, which its manifest promises (stdout: base64); it starts: ${JSON.stringify(text.slice(0, 80))}` };
  }
  const binary = atob(compact);
  return { ok: true, bytes: Uint8Array.from(binary, (char) => char.charCodeAt(0)), contentType: 'application/octet-stream', decoded: true };
}
