import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobNotFoundError, type BlobSource, type BlobStore, Meter, type PutOptions, type PutResult,
  bufferSource, checkedSha256, readPrefix,
} from './blob-store';

/** Samples and reports are for Docket's user alone, whatever the process umask. */
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/**
 * A content-addressed store on the local filesystem: `<root>/sha256/ab/abcdef…`. Writes go to a
 * temporary file that is renamed into place once the hash is known, so a reader never sees a partial
 * blob and a refused or aborted write leaves nothing behind.
 */
export class FsBlobStore implements BlobStore {
  private readonly tmpDir: string;

  constructor(readonly root: string) {
    this.tmpDir = join(root, 'tmp');
  }

  get location(): string {
    return this.root;
  }

  async init(): Promise<this> {
    await mkdir(this.tmpDir, { recursive: true, mode: PRIVATE_DIR });
    await mkdir(join(this.root, 'sha256'), { recursive: true, mode: PRIVATE_DIR });
    return this;
  }

  pathOf(sha256: string): string {
    checkedSha256(sha256);
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

  async put(source: BlobSource, options: PutOptions = {}): Promise<PutResult> {
    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const meter = new Meter(options);
    try {
      await pipeline(source, (input: BlobSource) => meter.pass(input), createWriteStream(tmp, { flags: 'wx', mode: PRIVATE_FILE }));
      const result = meter.finish();
      await mkdir(join(this.root, 'sha256', result.sha256.slice(0, 2)), { recursive: true, mode: PRIVATE_DIR });
      // Replacing an existing copy refreshes its mtime, which is what retention reads as "last stored".
      await rename(tmp, this.pathOf(result.sha256));
      return result;
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }

  async putBuffer(data: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.put(bufferSource(data), options);
  }

  async open(sha256: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    await this.size(sha256);
    return createReadStream(this.pathOf(sha256), range);
  }

  read(sha256: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
    return readPrefix(this, sha256, maxBytes);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async removeOlderThan(cutoff: Date): Promise<number> {
    let removed = 0;
    const blobs = join(this.root, 'sha256');
    for (const fan of await listOrEmpty(blobs)) {
      removed += await removeFilesOlderThan(join(blobs, fan), cutoff);
    }
    await removeFilesOlderThan(this.tmpDir, cutoff);
    return removed;
  }

  async close(): Promise<void> {
    // Files hold no connection.
  }
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function removeFilesOlderThan(dir: string, cutoff: Date): Promise<number> {
  let removed = 0;
  for (const name of await listOrEmpty(dir)) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || info.mtime >= cutoff) continue;
    await rm(path, { force: true });
    removed += 1;
  }
  return removed;
}
