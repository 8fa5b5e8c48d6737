import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** Raised when a stream grows past the limit its caller set; nothing is left in the store. */
export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the upload is larger than the limit of ${limit} bytes`);
  }
}

export class BlobNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`blob ${sha256} is not in the blob store`);
  }
}

export class ChecksumMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string) {
    super(`the content's sha256 is ${actual}, not the ${expected} the client sent`);
  }
}

export interface PutOptions {
  /** Refuse past this many bytes. */
  limit?: number;
  /** Keep only the first `limit` bytes instead of refusing, and say so in the answer. */
  truncate?: boolean;
  /** A client-supplied hash that the content must match. */
  expectSha256?: string;
}

export interface PutResult {
  sha256: string;
  size: number;
  truncated: boolean;
}

export type BlobSource = Readable | AsyncIterable<Uint8Array>;

/**
 * Content-addressed storage for samples, engine outputs and large reports, referenced by sha256 (claim
 * check). A put streams and hashes as it goes, and either stores the whole blob under its hash or
 * leaves nothing behind; a reader never sees a partial blob. Implementations: the filesystem
 * (blob-store-fs.ts, the embedded default) and S3-compatible servers (blob-store-s3.ts).
 */
export interface BlobStore {
  /** Where the blobs are, for messages: a folder or an `s3://` URL. */
  readonly location: string;
  put(source: BlobSource, options?: PutOptions): Promise<PutResult>;
  putBuffer(data: Uint8Array | string, options?: PutOptions): Promise<PutResult>;
  has(sha256: string): Promise<boolean>;
  /** The blob's size in bytes; BlobNotFoundError when it is not there. */
  size(sha256: string): Promise<number>;
  /** A read stream of the blob, or of bytes `start` to `end` inclusive; BlobNotFoundError when it is not there. */
  open(sha256: string, range?: { start?: number; end?: number }): Promise<Readable>;
  /** The blob's first `maxBytes` bytes (all of it by default). */
  read(sha256: string, maxBytes?: number): Promise<Buffer>;
  remove(sha256: string): Promise<void>;
  /**
   * Removes blobs last written before `cutoff`, and unfinished uploads begun before it (a process killed
   * mid-upload); answers how many blobs went. Storing content again counts as writing it.
   */
  removeOlderThan(cutoff: Date): Promise<number>;
  /** Releases connections; the store is not used afterwards. */
  close(): Promise<void>;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Refuses anything but a lowercase hex sha256, so a reference can never name another path or key. */
export function checkedSha256(sha256: string): string {
  if (!SHA256.test(sha256)) throw new BlobNotFoundError(sha256);
  return sha256;
}

/**
 * Hashes and counts what passes through `pass`, enforcing PutOptions on the way: past the limit it
 * fails (or, truncating, drops the rest while still draining the source so its producer never stalls).
 */
export class Meter {
  size = 0;
  truncated = false;
  private readonly hash = createHash('sha256');
  private readonly limit: number;

  constructor(private readonly options: PutOptions) {
    this.limit = options.limit ?? Number.POSITIVE_INFINITY;
  }

  async *pass(source: BlobSource): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      if (this.truncated) continue;
      let piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      if (this.size + piece.length > this.limit) {
        if (!this.options.truncate) throw new BlobTooLargeError(this.limit);
        piece = piece.subarray(0, this.limit - this.size);
        this.truncated = true;
      }
      this.size += piece.length;
      this.hash.update(piece);
      if (piece.length) yield piece;
    }
  }

  /** The result once the source is exhausted; ChecksumMismatchError when the client's hash differs. */
  finish(): PutResult {
    const sha256 = this.hash.digest('hex');
    const expected = this.options.expectSha256;
    if (expected && expected.toLowerCase() !== sha256) throw new ChecksumMismatchError(expected, sha256);
    return { sha256, size: this.size, truncated: this.truncated };
  }
}

export function bufferSource(data: Uint8Array | string): AsyncIterable<Uint8Array> {
  const buffer = Buffer.from(data);
  return (async function* () { yield buffer; })();
}

/**
 * The first `maxBytes` bytes of a blob (all of it when unbounded), through a store's `size` and
 * `open`, so every store reads a prefix the same way; a missing blob fails as `size` says.
 */
export async function readPrefix(store: Pick<BlobStore, 'size' | 'open'>, sha256: string, maxBytes: number): Promise<Buffer> {
  if (maxBytes <= 0) {
    await store.size(sha256);
    return Buffer.alloc(0);
  }
  const range = Number.isFinite(maxBytes) ? { end: maxBytes - 1 } : {};
  const chunks: Buffer[] = [];
  for await (const chunk of await store.open(sha256, range)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
