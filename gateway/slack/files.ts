import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { WebClient } from '@slack/web-api';
import { type BlobStore, BlobTooLargeError } from '../../infra/blob-store';
import type { EngineRegistry } from '../../infra/engine-registry';
import { FileTypeSniffer } from '../../infra/file-type';
import type { BlobRef } from '../../core/investigation';
import { formatBytes } from '../../core/units';
import { sanitizeFilename } from '../uploads';
import { SlackRefusal } from './conversation';

/** Slack's own hosts: the bot token goes to no other, whatever a file's URL says. */
const SLACK_FILE_HOSTS = /(^|\.)(slack\.com|slack-edge\.com|slack-files\.com)$/i;
const DOWNLOAD_TIMEOUT_MS = 120_000;

/** The largest file an analyzer takes: the largest `sizelimit` of those that accept files. */
export function fileLimit(registry: EngineRegistry): number {
  const accepting = registry.list().map((engine) => engine.manifest).filter((manifest) => manifest.kind === 'analyzer' && manifest.accepts.includes('file'));
  return Math.max(0, ...accepting.map((manifest) => manifest.sizelimit));
}

export interface FileFetch {
  client: WebClient;
  botToken: string;
  blobs: BlobStore;
  limit: number;
  /** DOCKET_SLACK_API_URL: its host is trusted like Slack's (a proxy, or a fake Slack in tests). */
  apiUrl?: string;
}

/**
 * A file shared with the bot, streamed from Slack into the blob store with the bot token (Slack's
 * file URLs need it), never past the limit and never buffered whole.
 */
export async function fetchSharedFile(fileId: string, options: FileFetch): Promise<BlobRef> {
  const info = await options.client.files.info({ file: fileId });
  const file = info.file;
  if (!file) throw new SlackRefusal(`Slack did not describe file ${fileId}`);
  const name = sanitizeFilename(file.name ?? fileId);
  if (!options.limit) throw new SlackRefusal(`no analyzer takes files here, so I cannot analyze ${name}`);
  if ((file.size ?? 0) > options.limit) {
    throw new SlackRefusal(`${name} is ${formatBytes(file.size ?? 0)}; the largest file I analyze is ${formatBytes(options.limit)}`);
  }
  const url = file.url_private_download ?? file.url_private;
  if (!url || !trusted(url, options.apiUrl)) throw new SlackRefusal(`Slack gave no download address of its own for ${name}`);
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${options.botToken}` },
    signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS),
  });
  if (!response.ok || !response.body) throw new SlackRefusal(`Slack answered ${response.status} to the download of ${name}`);
  // Without the files:read scope Slack answers its sign-in page instead of the file.
  if (/text\/html/i.test(response.headers.get('content-type') ?? '') && !/html/i.test(file.mimetype ?? '')) {
    await response.body.cancel();
    throw new SlackRefusal(`Slack sent a web page instead of ${name}: the app needs the files:read scope`);
  }
  try {
    const sniffer = new FileTypeSniffer();
    const stored = await options.blobs.put(sniffer.watch(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>)), { limit: options.limit });
    // Detected from the bytes, not Slack's guess from the name: engines take files by it (manifest filetypes).
    return { sha256: stored.sha256, size: stored.size, filename: name, contentType: sniffer.contentType() };
  } catch (error) {
    if (error instanceof BlobTooLargeError) throw new SlackRefusal(`${name} is larger than ${formatBytes(options.limit)}, the largest file I analyze`);
    throw error;
  }
}

function trusted(url: string, apiUrl?: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (apiUrl && parsed.host === new URL(apiUrl).host) return true;
  return parsed.protocol === 'https:' && SLACK_FILE_HOSTS.test(parsed.hostname);
}
