import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CopyObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  BlobNotFoundError, type BlobSource, type BlobStore, Meter, type PutOptions, type PutResult,
  bufferSource, checkedSha256, readPrefix,
} from './blob-store';
import type { CacheEntries } from './result-cache';

/** Where an S3 store lives and how to reach it; unset fields fall to the AWS SDK's own chain (profiles, instance roles). */
export interface S3Settings {
  /** `s3://bucket` or `s3://bucket/prefix`. */
  url: string;
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need. */
  pathStyle: boolean;
}

/** A bucket and a key prefix ('' or ending in `/`) inside it. */
export interface S3Place {
  bucket: string;
  prefix: string;
}

const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/([A-Za-z0-9._\/-]*))?$/;
/** S3 copies at most 5 GiB in one request; larger blobs would need a multipart copy, which no Docket limit comes near. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** Parts of 8 MiB, two in flight: an upload holds about 16–24 MiB whatever its size. */
const PART_BYTES = 8 * 1024 ** 2;
const PARTS_IN_FLIGHT = 2;
const DELETE_BATCH = 1000;

/** Parses `s3://bucket/prefix`; undefined when the text is not one. */
export function parseS3Url(url: string): S3Place | undefined {
  const match = S3_URL.exec(url);
  if (!match) return undefined;
  const segments = (match[2] ?? '').split('/').filter(Boolean);
  if (segments.some((segment) => segment === '.' || segment === '..')) return undefined;
  return { bucket: match[1], prefix: segments.length ? `${segments.join('/')}/` : '' };
}

export function s3Client(settings: S3Settings): S3Client {
  const credentials = settings.accessKeyId && settings.secretAccessKey
    ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey, sessionToken: settings.sessionToken }
    : undefined;
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region ?? (settings.endpoint ? 'us-east-1' : undefined),
    forcePathStyle: settings.pathStyle,
    credentials,
    // S3-compatible servers differ in which of the newer checksum headers they know; send them only where S3 requires one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Checks at start that the bucket answers, so a wrong endpoint or key fails once, with what to fix. */
export async function checkBucket(s3: S3Client, url: string, place: S3Place): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: place.bucket }));
  } catch (error) {
    const status = statusOf(error);
    const why = status === 404 ? 'the bucket does not exist: create it'
      : status === 403 ? 'access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile or role)'
        : 'check AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) and that the server runs';
    throw new Error(`the blob store ${url} does not answer (${describe(error)}): ${why}`);
  }
}

/**
 * Blobs in an S3-compatible bucket: `<prefix>sha256/ab/abcdef…`. An upload streams to a temporary key
 * (`<prefix>tmp/…`, multipart past 8 MiB) while it is hashed, then is copied to its content address and
 * the temporary key deleted; a refused or failed upload deletes the temporary key or aborts the
 * multipart upload, so nothing is left behind.
 */
export class S3BlobStore implements BlobStore {
  constructor(private readonly s3: S3Client, private readonly place: S3Place, readonly location: string) {}

  async has(sha256: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.place.bucket, Key: this.keyOf(sha256) }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw this.failure(`cannot check blob ${sha256}`, error);
    }
  }

  async size(sha256: string): Promise<number> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.place.bucket, Key: this.keyOf(sha256) }));
      return head.ContentLength ?? 0;
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(sha256);
      throw this.failure(`cannot read blob ${sha256}`, error);
    }
  }

  async put(source: BlobSource, options: PutOptions = {}): Promise<PutResult> {
    const tmpKey = `${this.place.prefix}tmp/${Date.now()}-${randomBytes(8).toString('hex')}`;
    const meter = new Meter(options);
    let refusal: unknown;
    const body = Readable.from((async function* () {
      try {
        yield* meter.pass(source);
      } catch (error) {
        refusal = error;
        throw error;
      }
    })());
    body.on('error', () => undefined);
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.place.bucket, Key: tmpKey, Body: body },
      partSize: PART_BYTES,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      body.destroy();
      await this.discard(tmpKey);
      throw refusal ?? this.failure('cannot store the upload', error);
    }
    try {
      const result = meter.finish();
      if (result.size > MAX_COPY_BYTES) throw new Error(`a blob of ${result.size} bytes is larger than the S3 store's 5 GiB`);
      await this.s3.send(new CopyObjectCommand({
        Bucket: this.place.bucket,
        Key: this.keyOf(result.sha256),
        CopySource: encodeURI(`${this.place.bucket}/${tmpKey}`),
      }));
      return result;
    } finally {
      await this.discard(tmpKey);
    }
  }

  async putBuffer(data: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    return this.put(bufferSource(data), options);
  }

  async open(sha256: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    const wanted = range.start !== undefined || range.end !== undefined;
    const header = wanted ? `bytes=${range.start ?? 0}-${range.end ?? ''}` : undefined;
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.place.bucket, Key: this.keyOf(sha256), Range: header }));
      return object.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(sha256);
      // S3 refuses a range that starts past the end (any range of an empty blob); a file read gives no bytes.
      if (statusOf(error) === 416) {
        await this.size(sha256);
        return Readable.from([]);
      }
      throw this.failure(`cannot read blob ${sha256}`, error);
    }
  }

  read(sha256: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
    return readPrefix(this, sha256, maxBytes);
  }

  async remove(sha256: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.place.bucket, Key: this.keyOf(sha256) }));
  }

  async removeOlderThan(cutoff: Date): Promise<number> {
    const removed = await removeKeysOlderThan(this.s3, this.place.bucket, `${this.place.prefix}sha256/`, cutoff);
    await removeKeysOlderThan(this.s3, this.place.bucket, `${this.place.prefix}tmp/`, cutoff);
    await this.abortUploadsBegunBefore(cutoff);
    return removed;
  }

  /** Multipart uploads of a process that died mid-upload: their parts are stored, and billed, until aborted. */
  private async abortUploadsBegunBefore(cutoff: Date): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (let page = 0; page < 1000; page += 1) {
      const listed = await this.s3.send(new ListMultipartUploadsCommand({
        Bucket: this.place.bucket, Prefix: `${this.place.prefix}tmp/`, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker,
      }));
      for (const upload of listed.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= cutoff) continue;
        await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.place.bucket, Key: upload.Key, UploadId: upload.UploadId }));
      }
      if (!listed.IsTruncated) return;
      keyMarker = listed.NextKeyMarker;
      uploadIdMarker = listed.NextUploadIdMarker;
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }

  private keyOf(sha256: string): string {
    checkedSha256(sha256);
    return `${this.place.prefix}sha256/${sha256.slice(0, 2)}/${sha256}`;
  }

  private async discard(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.place.bucket, Key: key })).catch(() => undefined);
  }

  private failure(what: string, error: unknown): Error {
    return new Error(`${what} in ${this.location}: ${describe(error)}; check that the S3 server answers`, { cause: error });
  }
}

/** Result-cache entries as small JSON objects under `<prefix>cache/`, beside the blobs they refer to. */
export class S3CacheEntries implements CacheEntries {
  constructor(private readonly s3: S3Client, private readonly place: S3Place) {}

  async read(name: string): Promise<string | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.place.bucket, Key: this.keyOf(name) }));
      return await object.Body?.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async write(name: string, text: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({
      Bucket: this.place.bucket, Key: this.keyOf(name), Body: text, ContentType: 'application/json',
    }));
  }

  async removeOlderThan(cutoff: Date): Promise<number> {
    return removeKeysOlderThan(this.s3, this.place.bucket, `${this.place.prefix}cache/`, cutoff);
  }

  private keyOf(name: string): string {
    return `${this.place.prefix}cache/${name}.json`;
  }
}

async function removeKeysOlderThan(s3: S3Client, bucket: string, prefix: string, cutoff: Date): Promise<number> {
  const old: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const object of page.Contents ?? []) {
      if (object.Key && object.LastModified && object.LastModified < cutoff) old.push(object.Key);
    }
  }
  for (let start = 0; start < old.length; start += DELETE_BATCH) {
    const batch = old.slice(start, start + DELETE_BATCH);
    const answer = await s3.send(new DeleteObjectsCommand({
      Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
    }));
    const failed = answer.Errors ?? [];
    if (failed.length) throw new Error(`could not delete ${failed.length} expired object(s) under s3://${bucket}/${prefix}, first ${failed[0].Key}: ${failed[0].Message}`);
  }
  return old.length;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  if (error instanceof BlobNotFoundError) return true;
  const name = (error as Error)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(error) === 404;
}

function describe(error: unknown): string {
  const name = (error as Error)?.name;
  const message = (error as Error)?.message || `HTTP ${statusOf(error) ?? 'error'}`;
  return name && name !== 'Error' ? `${name}: ${message}` : message;
}
