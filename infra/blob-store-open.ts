import { join } from 'node:path';
import type { Config } from '../core/config';
import type { BlobStore } from './blob-store';
import { FsBlobStore } from './blob-store-fs';
import { S3BlobStore, S3CacheEntries, type S3Settings, checkBucket, parseS3Url, s3Client } from './blob-store-s3';
import { FsCacheEntries, ResultCache } from './result-cache';

export type StorageConfig = Pick<Config,
  'DOCKET_DATA_DIR' | 'DOCKET_BLOB_URL' | 'DOCKET_BLOB_PATH_STYLE' | 'AWS_ENDPOINT_URL_S3' | 'AWS_ENDPOINT_URL' |
  'AWS_REGION' | 'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY' | 'AWS_SESSION_TOKEN'>;

/** Where the blobs and the result cache live, with one connection for both. */
export interface Storage {
  blobs: BlobStore;
  cache: ResultCache;
}

/**
 * Opens the store DOCKET_BLOB_URL names (the filesystem under DOCKET_DATA_DIR when unset) and the
 * result cache beside it; an S3 bucket is checked at once, so a wrong endpoint or key fails at start.
 */
export async function openBlobStore(config: StorageConfig): Promise<Storage> {
  if (!config.DOCKET_BLOB_URL) {
    return {
      blobs: await new FsBlobStore(join(config.DOCKET_DATA_DIR, 'blobs')).init(),
      cache: new ResultCache(new FsCacheEntries(join(config.DOCKET_DATA_DIR, 'cache'))),
    };
  }
  const settings = s3Settings(config, config.DOCKET_BLOB_URL);
  const place = parseS3Url(settings.url);
  if (!place) throw new Error(`DOCKET_BLOB_URL=${settings.url} is not s3://bucket or s3://bucket/prefix`);
  const s3 = s3Client(settings);
  try {
    await checkBucket(s3, settings.url, place);
  } catch (error) {
    s3.destroy();
    throw error;
  }
  return { blobs: new S3BlobStore(s3, place, settings.url), cache: new ResultCache(new S3CacheEntries(s3, place)) };
}

function s3Settings(config: StorageConfig, url: string): S3Settings {
  const endpoint = config.AWS_ENDPOINT_URL_S3 ?? config.AWS_ENDPOINT_URL;
  const pathStyle = config.DOCKET_BLOB_PATH_STYLE === 'auto' ? endpoint !== undefined : config.DOCKET_BLOB_PATH_STYLE === 'on';
  return {
    url,
    endpoint,
    region: config.AWS_REGION,
    accessKeyId: config.AWS_ACCESS_KEY_ID,
    secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
    sessionToken: config.AWS_SESSION_TOKEN,
    pathStyle,
  };
}
