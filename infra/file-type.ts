import { filetypeinfo } from 'magic-bytes.js';
import type { BlobSource, BlobStore } from './blob-store';

/**
 * What a file is, from its bytes and never from what the client said: engines take files by MIME
 * type (manifest `filetypes`), and a client's `Content-Type` is whatever its library guessed from
 * the name. Magic numbers come from magic-bytes.js; zip archives are told apart by the names of
 * their entries (an APK holds AndroidManifest.xml, a JAR META-INF/MANIFEST.MF), and a file with no
 * signature is text when it is UTF-8 without NUL bytes.
 */

export const TEXT = 'text/plain';
export const BINARY = 'application/octet-stream';
export const APK = 'application/vnd.android.package-archive';
export const ZIP = 'application/zip';
export const JAR = 'application/java-archive';

/** Enough for every signature magic-bytes knows (tar's is at 257) and for a fair look at text. */
const HEAD_BYTES = 8192;
const LOCAL_HEADER = Buffer.from('PK\x03\x04', 'latin1');
const CENTRAL_HEADER = Buffer.from('PK\x01\x02', 'latin1');
/** A zip header's fixed part and the longest entry name looked for: what may straddle two chunks. */
const CARRY_BYTES = 46 + 64;
/** Entry names that decide what a zip archive is, in the order they are checked. */
const ZIP_MARKERS: Array<[name: string, type: string]> = [['AndroidManifest.xml', APK], ['META-INF/MANIFEST.MF', JAR]];
/** Types magic-bytes names without a MIME type, as libmagic names them. */
const UNNAMED: Record<string, string> = { exe: 'application/x-dosexec' };

/**
 * Watches bytes pass on their way to the blob store: `watch(source)` yields the same chunks, and
 * `contentType()` answers once they have all gone by. Memory stays bounded whatever the size.
 */
export class FileTypeSniffer {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private zip: boolean | undefined;
  private carry = Buffer.alloc(0);
  private readonly entries = new Set<string>();

  async *watch(source: BlobSource): AsyncGenerator<Uint8Array> {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      this.observe(chunk);
      yield chunk;
    }
  }

  observe(chunk: Uint8Array): void {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.headBytes < HEAD_BYTES) {
      const part = bytes.subarray(0, HEAD_BYTES - this.headBytes);
      this.head.push(Buffer.from(part));
      this.headBytes += part.length;
    }
    if (this.zip === undefined && this.headBytes >= LOCAL_HEADER.length) this.zip = Buffer.concat(this.head).subarray(0, 4).equals(LOCAL_HEADER);
    if (this.zip) this.scanZip(bytes);
  }

  contentType(): string {
    const head = Buffer.concat(this.head);
    const guessed = signatureType(head);
    if (guessed === ZIP || guessed === JAR) return this.zipType();
    if (guessed) return guessed;
    return looksLikeText(head, this.headBytes >= HEAD_BYTES) ? TEXT : BINARY;
  }

  /** Notes the marker entry names found in local or central zip headers, chunk by chunk. */
  private scanZip(bytes: Buffer): void {
    const window = this.carry.length ? Buffer.concat([this.carry, bytes]) : bytes;
    for (const [signature, nameLengthAt, nameAt] of [[LOCAL_HEADER, 26, 30], [CENTRAL_HEADER, 28, 46]] as const) {
      for (let at = window.indexOf(signature); at !== -1; at = window.indexOf(signature, at + 1)) {
        if (at + nameAt > window.length) break;
        const length = window.readUInt16LE(at + nameLengthAt);
        const name = window.subarray(at + nameAt, Math.min(window.length, at + nameAt + length)).toString('latin1');
        for (const [marker] of ZIP_MARKERS) if (name === marker) this.entries.add(marker);
      }
    }
    this.carry = Buffer.from(window.subarray(Math.max(0, window.length - CARRY_BYTES)));
  }

  private zipType(): string {
    for (const [marker, type] of ZIP_MARKERS) if (this.entries.has(marker)) return type;
    return ZIP;
  }
}

/** The type of a file held whole in memory (an engine's artifact, a test's sample). */
export function detectFileType(bytes: Uint8Array): string {
  const sniffer = new FileTypeSniffer();
  sniffer.observe(bytes);
  return sniffer.contentType();
}

/** The type of a stored blob, read through once (an engine's file artifact, bounded by its output limit). */
export async function detectBlobType(blobs: BlobStore, sha256: string): Promise<string> {
  const sniffer = new FileTypeSniffer();
  for await (const chunk of sniffer.watch(await blobs.open(sha256))) void chunk;
  return sniffer.contentType();
}

function signatureType(head: Buffer): string | undefined {
  if (!head.length) return undefined;
  for (const guess of filetypeinfo(head)) {
    const type = guess.mime ?? UNNAMED[guess.typename];
    if (type) return type.toLowerCase();
  }
  return undefined;
}

/**
 * UTF-8 with no NUL byte. A multi-byte character cut at the end of the head (`cut`: there is more)
 * is not held against it.
 */
function looksLikeText(head: Buffer, cut: boolean): boolean {
  if (!head.length || head.includes(0)) return false;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    decoder.decode(head, { stream: cut });
    return true;
  } catch {
    return false;
  }
}
