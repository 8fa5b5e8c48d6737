/**
 * CloudPassage's tasks printed their result, often base64-encoded. A result is decoded only when it
 * is canonical base64 (re-encoding gives the same text) of a useful length, so that a plain word that
 * happens to use the base64 alphabet ("deadbeef") is left alone.
 */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MIN_BASE64_CHARS = 16;

export interface DecodedStdout {
  bytes: Uint8Array;
  encoding: 'base64' | 'raw';
}

export function decodeStdout(raw: Uint8Array): DecodedStdout {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(raw);
  const compact = text.replace(/\s+/g, '');
  if (compact.length < MIN_BASE64_CHARS || compact.length % 4 !== 0 || !BASE64.test(compact)) {
    return { bytes: raw, encoding: 'raw' };
  }
  const binary = atob(compact);
  if (btoa(binary) !== compact) return { bytes: raw, encoding: 'raw' };
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  return { bytes, encoding: 'base64' };
}
