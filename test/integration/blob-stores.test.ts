import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import type { EngineReport } from '../../core/investigation';
import { loadConfig } from '../../core/config';
import { BlobNotFoundError, type BlobStore, BlobTooLargeError, ChecksumMismatchError } from '../../infra/blob-store';
import { openBlobStore } from '../../infra/blob-store-open';
import { sweepExpired } from '../../infra/blob-retention';
import { silentLogger } from '../../infra/log';
import { ResultCache } from '../../infra/result-cache';
import { enginesFolder, fileinfoManifest, getJson, upload } from '../helpers/fixtures';
import { poll, startTestSystem } from '../helpers/system';
import { type S3Server, startVersitygw } from '../helpers/versitygw';

const MiB = 1024 ** 2;
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** `count` chunks of `size` bytes, each filled with its index, made as they are read. */
const chunks = (count: number, size: number) => Readable.from((function* () {
  for (let i = 0; i < count; i += 1) yield Buffer.alloc(size, i % 256);
})());
const chunksSha256 = (count: number, size: number) => {
  const hash = createHash('sha256');
  for (let i = 0; i < count; i += 1) hash.update(Buffer.alloc(size, i % 256));
  return hash.digest('hex');
};

/** Sends `bytes`, then fails the way a client that hangs up mid-upload does. */
const hangsUpAfter = (bytes: number) => Readable.from((async function* () {
  for (let sent = 0; sent < bytes; sent += MiB) yield Buffer.alloc(MiB, 1);
  throw new Error('the client went away');
})());

interface Opened {
  blobs: BlobStore;
  cache: ResultCache;
  /** Everything the store holds: files under its folder, or keys and unfinished multipart uploads in its bucket. */
  stored(): Promise<string[]>;
  /** Leaves what a process killed mid-upload would: a temporary file, or a temporary key and a multipart upload. */
  abandonUpload(): Promise<void>;
}

let s3: S3Server;
beforeAll(async () => {
  s3 = await startVersitygw();
});
afterAll(async () => {
  await s3?.stop();
});

function listFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else found.push(relative(root, path));
    }
  };
  walk(root);
  return found.sort();
}

async function openFs(): Promise<Opened> {
  const data = mkdtempSync(join(tmpdir(), 'docket-blobs-'));
  const { blobs, cache } = await openBlobStore(loadConfig({ DOCKET_DATA_DIR: data }));
  return {
    blobs, cache,
    stored: async () => listFiles(data),
    abandonUpload: async () => {
      writeFileSync(join(data, 'blobs', 'tmp', 'left-by-a-killed-process'), 'half a sample');
    },
  };
}

async function openS3(): Promise<Opened> {
  const bucket = await s3.bucket();
  const prefix = 'docket/blobs';
  const { blobs, cache } = await openBlobStore(loadConfig({ DOCKET_DATA_DIR: '/nonexistent-on-purpose', ...s3.env(bucket, prefix) }));
  return {
    blobs, cache,
    stored: async () => {
      const keys: string[] = [];
      for await (const page of paginateListObjectsV2({ client: s3.client }, { Bucket: bucket })) {
        for (const object of page.Contents ?? []) keys.push(object.Key!);
      }
      const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const upload of uploads.Uploads ?? []) keys.push(`multipart upload of ${upload.Key}`);
      return keys.sort();
    },
    abandonUpload: async () => {
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/tmp/left-by-a-killed-process`, Body: 'half a sample' }));
      await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}/tmp/multipart-left-by-a-killed-process` }));
    },
  };
}

/** What a stored blob looks like in each store, to compare `stored()` against. */
const blobEntry = { fs: (sha: string) => `blobs/sha256/${sha.slice(0, 2)}/${sha}`, s3: (sha: string) => `docket/blobs/sha256/${sha.slice(0, 2)}/${sha}` };
const isBlob = { fs: (entry: string) => entry.startsWith('blobs/sha256/'), s3: (entry: string) => entry.startsWith('docket/blobs/sha256/') };

describe.each([
  ['filesystem', 'fs' as const, openFs],
  ['S3 (versitygw)', 's3' as const, openS3],
])('the %s blob store', (_name, kind, open) => {
  let store: Opened;
  beforeEach(async () => {
    store = await open();
  });
  afterEach(async () => {
    await store.blobs.close();
  });

  it('stores a stream under the sha256 computed while streaming, and reads it back', async () => {
    const put = await store.blobs.put(chunks(3, 1000));
    expect(put).toEqual({ sha256: chunksSha256(3, 1000), size: 3000, truncated: false });
    expect(sha256(await store.blobs.read(put.sha256))).toBe(put.sha256);
    expect(await store.stored()).toEqual([blobEntry[kind](put.sha256)]);
  });

  it('refuses a small upload past the limit and leaves nothing behind', async () => {
    await expect(store.blobs.put(chunks(10, 1024), { limit: 4096 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await store.stored()).toEqual([]);
  });

  it('refuses a large upload past the limit once parts are sent and leaves nothing behind, no multipart upload either', async () => {
    await expect(store.blobs.put(chunks(20, MiB), { limit: 18 * MiB })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await store.stored()).toEqual([]);
  });

  it('keeps the first bytes and says so when asked to truncate, draining the rest of the source', async () => {
    const source = chunks(10, 1024);
    const put = await store.blobs.put(source, { limit: 2500, truncate: true });
    expect(put).toMatchObject({ size: 2500, truncated: true });
    expect(source.readableEnded).toBe(true);
    expect((await store.blobs.read(put.sha256)).length).toBe(2500);
  });

  it('refuses content that does not match the sha256 the client sent and leaves nothing behind', async () => {
    const error = await store.blobs.putBuffer('abc', { expectSha256: 'f'.repeat(64) }).catch((e) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(error.actual).toBe(sha256('abc'));
    expect(await store.stored()).toEqual([]);
  });

  it('accepts content whose sha256 the client sent in capitals', async () => {
    const put = await store.blobs.putBuffer('abc', { expectSha256: sha256('abc').toUpperCase() });
    expect(put.sha256).toBe(sha256('abc'));
  });

  it('leaves nothing behind when the source fails mid-upload, small or past the first part', async () => {
    await expect(store.blobs.put(hangsUpAfter(MiB))).rejects.toThrow('the client went away');
    await expect(store.blobs.put(hangsUpAfter(20 * MiB))).rejects.toThrow('the client went away');
    expect(await store.stored()).toEqual([]);
  });

  it('stores concurrent puts of the same content once, whole', async () => {
    const puts = await Promise.all([1, 2, 3, 4].map(() => store.blobs.put(chunks(3, MiB))));
    expect(new Set(puts.map((put) => put.sha256))).toEqual(new Set([chunksSha256(3, MiB)]));
    expect(await store.stored()).toEqual([blobEntry[kind](puts[0].sha256)]);
    expect(sha256(await store.blobs.read(puts[0].sha256))).toBe(puts[0].sha256);
  });

  it('answers has, size, ranges, prefixes and remove, and BlobNotFoundError for what is not there', async () => {
    const put = await store.blobs.putBuffer('0123456789');
    expect(await store.blobs.has(put.sha256)).toBe(true);
    expect(await store.blobs.size(put.sha256)).toBe(10);
    expect((await store.blobs.read(put.sha256, 4)).toString()).toBe('0123');
    expect((await store.blobs.read(put.sha256, 0)).toString()).toBe('');
    const middle: Buffer[] = [];
    for await (const chunk of await store.blobs.open(put.sha256, { start: 2, end: 5 })) middle.push(chunk as Buffer);
    expect(Buffer.concat(middle).toString()).toBe('2345');

    await store.blobs.remove(put.sha256);
    expect(await store.blobs.has(put.sha256)).toBe(false);
    await expect(store.blobs.read(put.sha256)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.blobs.open(put.sha256)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.blobs.size(put.sha256)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('refuses a reference that is not a sha256, so none can name another file or key', async () => {
    for (const reference of ['../../keys.json', 'tmp/x', 'A'.repeat(64)]) {
      expect(await store.blobs.has(reference)).toBe(false);
      await expect(store.blobs.read(reference)).rejects.toBeInstanceOf(BlobNotFoundError);
    }
  });

  it('stores and reads an empty blob, whole and by prefix', async () => {
    const put = await store.blobs.putBuffer('');
    expect(put).toEqual({ sha256: sha256(''), size: 0, truncated: false });
    expect((await store.blobs.read(put.sha256)).length).toBe(0);
    expect((await store.blobs.read(put.sha256, 80)).length).toBe(0);
  });

  it('streams a 256 MiB upload and its read-back without holding it in memory', async () => {
    const SIZE_MIB = 256;
    let peak = process.memoryUsage().rss;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 10);
    const before = process.memoryUsage().rss;
    try {
      const put = await store.blobs.put(chunks(SIZE_MIB, MiB));
      expect(put).toEqual({ sha256: chunksSha256(SIZE_MIB, MiB), size: SIZE_MIB * MiB, truncated: false });
      const hash = createHash('sha256');
      for await (const chunk of await store.blobs.open(put.sha256)) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(put.sha256);
    } finally {
      clearInterval(sampler);
    }
    // Loose on purpose: the garbage collector decides when freed chunks go (about 40-55 MiB measured on
    // a quiet machine, 104 MiB once on a busy one, whatever the size), while holding the whole blob
    // would take all 256 MiB at least.
    expect((peak - before) / MiB).toBeLessThan(SIZE_MIB * 0.75);
  });

  it('keeps cached results beside the blobs, and misses for unknown keys and when caching is off', async () => {
    const key = ResultCache.key({ engine: 'fileinfo', imageId: 'sha256:1', config: {}, subject: 'file:abc' });
    const report = { engine: 'fileinfo', status: 'success', summary: 'cached' } as unknown as EngineReport;
    expect(await store.cache.get(key, 60_000)).toBeUndefined();
    await store.cache.put(key, report);
    expect(await store.cache.get(key, 60_000)).toEqual(report);
    expect(await store.cache.get(key, 0)).toBeUndefined();
    expect(await store.cache.get(ResultCache.key({ engine: 'other', imageId: 'sha256:1', config: {}, subject: 'file:abc' }), 60_000)).toBeUndefined();
  });

  it('removes blobs, cached results and abandoned uploads stored before the retention cutoff, and keeps later ones', async () => {
    const old = await store.blobs.putBuffer('stored before the cutoff');
    const oldKey = ResultCache.key({ engine: 'fileinfo', imageId: 'old', config: {}, subject: 'file:old' });
    await store.cache.put(oldKey, { engine: 'fileinfo', status: 'success' } as EngineReport);
    await store.abandonUpload();
    // S3 dates are whole seconds: a cutoff on a whole second, after the old writes, never reads a later write as older.
    await new Promise((resolve) => setTimeout(resolve, 1100 - (Date.now() % 1000)));
    const cutoff = Math.floor(Date.now() / 1000) * 1000;
    const kept = await store.blobs.putBuffer('stored after the cutoff');
    const keptKey = ResultCache.key({ engine: 'fileinfo', imageId: 'new', config: {}, subject: 'file:new' });
    await store.cache.put(keptKey, { engine: 'fileinfo', status: 'success' } as EngineReport);

    const retentionMs = 1000;
    const sweep = await sweepExpired({ blobs: store.blobs, cache: store.cache, retentionMs, marginMs: 0, log: silentLogger }, cutoff + retentionMs);
    expect(sweep).toMatchObject({ blobs: 1, cacheEntries: 1 });
    expect(await store.blobs.has(old.sha256)).toBe(false);
    expect(await store.blobs.has(kept.sha256)).toBe(true);
    expect(await store.cache.get(oldKey, 60_000)).toBeUndefined();
    expect(await store.cache.get(keptKey, 60_000)).toBeDefined();
    const left = await store.stored();
    expect(left.filter((entry) => isBlob[kind](entry))).toEqual([blobEntry[kind](kept.sha256)]);
    expect(left.filter((entry) => entry.includes('tmp/') || entry.startsWith('multipart'))).toEqual([]);
  });
});

describe('an S3 blob store that does not answer', () => {
  it('fails at start naming the bucket and what to fix', async () => {
    const env = { ...s3.env('no-such-bucket-here', 'x'), DOCKET_DATA_DIR: tmpdir() };
    await expect(openBlobStore(loadConfig(env))).rejects.toThrow(/s3:\/\/no-such-bucket-here\/x does not answer .*the bucket does not exist: create it/);
    const denied = { ...env, DOCKET_BLOB_URL: `s3://${await s3.bucket()}`, AWS_SECRET_ACCESS_KEY: 'wrong' };
    await expect(openBlobStore(loadConfig(denied))).rejects.toThrow(/access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  });

  it('is refused by the configuration when DOCKET_BLOB_URL is not s3://bucket/prefix', () => {
    for (const url of ['http://bucket/x', 's3://', 's3://UPPER/x', 's3://bucket/../x']) {
      expect(() => loadConfig({ DOCKET_BLOB_URL: url })).toThrow(/DOCKET_BLOB_URL/);
    }
  });
});

describe('Docket with its blobs in S3 and no shared folder', () => {
  it('analyzes an upload with fileinfo, serves the result on /link, and keeps input and output in the bucket only', async () => {
    const bucket = await s3.bucket();
    const docket = await startTestSystem({ enginesDir: enginesFolder([fileinfoManifest]), env: s3.env(bucket, 'site-a') });
    try {
      const content = 'a sample that only ever lives in S3\n';
      const accepted = await upload(docket.baseUrl, 'fileinfo', content, 'notes.txt');
      expect(accepted.status).toBe(200);
      const result = await poll(
        () => getJson(`${docket.baseUrl}/result/${accepted.body.jobid}`),
        (r) => ['Success', 'Fail'].includes(r.body.status),
        `job ${accepted.body.jobid}`,
      );
      expect(result.body.status).toBe('Success');
      const link = await fetch(`${docket.baseUrl}${result.body.link}`);
      expect(link.status).toBe(200);
      const served = Buffer.from(await link.arrayBuffer());
      const report = JSON.parse(served.toString());
      // The engine hashed the bytes it was handed: the worker fetched them from the bucket.
      expect((report.full ?? report).sha256).toBe(sha256(content));

      const keys: string[] = [];
      for await (const page of paginateListObjectsV2({ client: s3.client }, { Bucket: bucket, Prefix: 'site-a/sha256/' })) {
        for (const object of page.Contents ?? []) keys.push(object.Key!);
      }
      expect(keys).toContain(`site-a/sha256/${sha256(content).slice(0, 2)}/${sha256(content)}`);
      expect(keys).toContain(`site-a/sha256/${sha256(served).slice(0, 2)}/${sha256(served)}`);
      expect(existsSync(join(docket.dataDir, 'blobs'))).toBe(false);
      expect(existsSync(join(docket.dataDir, 'cache'))).toBe(false);
    } finally {
      await docket.close();
    }
  });
});
