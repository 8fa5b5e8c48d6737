import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/** A real S3-compatible server on loopback: Versity's gateway serving a temporary folder as buckets. */
export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A client for the test's own look-ups (what is stored, unfinished multipart uploads). */
  client: S3Client;
  /** Creates a fresh, empty bucket and answers its name. */
  bucket(): Promise<string>;
  /** The environment a Docket process needs to use `s3://<bucket>/<prefix>` on this server. */
  env(bucket: string, prefix: string): Record<string, string>;
  stop(): Promise<void>;
}

export function versitygwBinary(): string {
  if (process.env.VERSITYGW) return process.env.VERSITYGW;
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'docket', 'versitygw', 'bin', 'versitygw');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startVersitygw(): Promise<S3Server> {
  const binary = versitygwBinary();
  if (!existsSync(binary)) throw new Error(`versitygw is not at ${binary}: run bash scripts/provision.sh versitygw (or set VERSITYGW to its path)`);
  const root = mkdtempSync(join(tmpdir(), 'docket-s3-'));
  const accessKeyId = `docket${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(16).toString('hex');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(binary, ['--access', accessKeyId, '--secret', secretAccessKey, '--port', `127.0.0.1:${port}`, '--quiet', 'posix', root], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  child.on('error', (error) => { stderr += error.message; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await waitUntilAnswering(endpoint, child, () => stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  return {
    endpoint, accessKeyId, secretAccessKey, client,
    async bucket() {
      const name = `docket-${randomBytes(6).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    env(bucket, prefix) {
      return {
        DOCKET_BLOB_URL: `s3://${bucket}/${prefix}`,
        AWS_ENDPOINT_URL_S3: endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: accessKeyId,
        AWS_SECRET_ACCESS_KEY: secretAccessKey,
      };
    },
    async stop() {
      client.destroy();
      await stop();
    },
  };
}

async function waitUntilAnswering(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let attempt = 0; attempt < 150; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`versitygw exited with ${child.exitCode}: ${stderr().trim()}`);
    const answered = await fetch(endpoint).then(async (response) => { await response.arrayBuffer(); return true; }, () => false);
    if (answered) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`versitygw did not answer on ${endpoint} within 15s: ${stderr().trim()}`);
}
