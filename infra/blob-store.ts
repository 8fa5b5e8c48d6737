import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobRef } from '../core/investigation';

/** Raised when a stream grows past the limit its caller set; nothing is left on disk. */
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

const SHA256 = /^[0-9a-f]{64}$/;
/** Samples and reports are for Docket's user alone, whatever the process umask. */
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/**
 * A content-addressed store on the local filesystem: `<root>/sha256/ab/abcdef…`. Writes go to a
 * temporary file that is renamed into place once the hash is known, so a reader never sees a partial
 * blob and a refused or aborted write leaves nothing behind.
 */
export class BlobStore {
  private readonly tmpDir: string;

  constructor(readonly root: string) {
    this.tmpDir = join(root, 'tmp');
  }

  async init(): Promise<this> {
    await mkdir(this.tmpDir, { recursive: true, mode: PRIVATE_DIR });
    await mkdir(join(this.root, 'sha256'), { recursive: true, mode: PRIVATE_DIR });
    return this;
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new BlobNotFoundError(sha256);
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  async size(sha256: string): Promise<number> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      throw new BlobNotFoundError(sha256);
    }
  }

  /** Streams `source` into the store, hashing as it goes. */
  async put(source: Readable | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    let truncated = false;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (truncated) return done();
        let piece = chunk;
        if (size + piece.length > limit) {
          if (!options.truncate) return done(new BlobTooLargeError(limit));
          piece = piece.subarray(0, limit - size);
          truncated = true;
        }
        size += piece.length;
        hash.update(piece);
        done(null, piece);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx', mode: PRIVATE_FILE }));
      const sha256 = hash.digest('hex');
      if (options.expectSha256 && options.expectSha256.toLowerCase() !== sha256) {
        throw new ChecksumMismatchError(options.expectSha256, sha256);
      }
      const target = this.pathOf(sha256);
      await mkdir(join(this.root, 'sha256', sha256.slice(0, 2)), { recursive: true, mode: PRIVATE_DIR });
      await rename(tmp, target);
      return { sha256, size, truncated };
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }

  async putBuffer(data: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    const buffer = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    return this.put((async function* () { yield buffer; })(), options);
  }

  async ref(sha256: string, meta: Omit<BlobRef, 'sha256' | 'size'> = {}): Promise<BlobRef> {
    return { sha256, size: await this.size(sha256), ...meta };
  }

  /** A read stream of the blob, or of its first `end + 1` bytes. */
  async open(sha256: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    await this.size(sha256);
    return createReadStream(this.pathOf(sha256), range);
  }

  async read(sha256: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
    const end = Number.isFinite(maxBytes) ? Math.max(0, maxBytes - 1) : undefined;
    if (maxBytes === 0) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const chunk of await this.open(sha256, { end })) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }
}

export class ChecksumMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string) {
    super(`the content's sha256 is ${actual}, not the ${expected} the client sent`);
  }
}
