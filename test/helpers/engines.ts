import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { BlobStore } from '../../infra/blob-store';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { DockerRunner } from '../../activities/runners/docker';
import { EngineRegistry } from '../../infra/engine-registry';
import { EngineRunners } from '../../infra/engine-runner';
import { type EngineRequest, interpret, prepareJob } from '../../activities/protocols';
import { EngineManifest } from '../../core/engine-manifest';
import type { BlobRef, Observable, Subject } from '../../core/investigation';
import { ensureImage } from '../../scripts/lib/images';
import { ROOT } from './system';

export const docker = new Docker();

/**
 * The runners a gateway under test asks (/readyz, /v1/engines): Docker, through `client` (the local
 * daemon by default). A gateway never runs a job, so the runner's blob store stays empty.
 */
export async function dockerRunners(client: Docker = docker): Promise<EngineRunners> {
  return new EngineRunners([new DockerRunner(client, await tempBlobStore())]);
}

/** A blob store in a fresh temporary folder. */
export async function tempBlobStore(): Promise<FsBlobStore> {
  return new FsBlobStore(mkdtempSync(join(tmpdir(), 'docket-blobs-'))).init();
}

/** The manifest of a sample engine under engines/, validated as Docket loads it. */
export async function sampleManifest(name: string): Promise<EngineManifest> {
  const registry = await EngineRegistry.load(join(ROOT, 'engines'));
  const manifest = registry.get(name);
  if (!manifest) throw new Error(`no sample engine ${name}: ${registry.errors.join('; ')}`);
  return manifest;
}

/** A manifest for a test engine, with Docket's defaults filled in. */
export function testManifest(fields: Record<string, unknown>): EngineManifest {
  return EngineManifest.parse({ kind: 'analyzer', accepts: ['file', 'other', 'domain', 'url', 'ip'], ...fields });
}

/** Builds the image of a test engine kept under test/engines/<dir>. */
export async function buildTestImage(dir: string, image: string): Promise<void> {
  await ensureImage(image, join(ROOT, 'test/engines', dir));
}

export async function fileSubject(blobs: BlobStore, content: Buffer | string, filename = 'sample.bin'): Promise<Subject> {
  const stored = await blobs.putBuffer(content);
  const file: BlobRef = { sha256: stored.sha256, size: stored.size, filename, contentType: 'application/octet-stream' };
  return { kind: 'file', file };
}

export function observableSubject(type: Observable['type'], data: string): Subject {
  return { kind: 'observable', observable: { type, data } };
}

/**
 * Runs one engine once through the real Docker runner and protocol adapter, the way an engine
 * worker does (without Temporal): the outcome plus the raw container run.
 */
export async function runEngineOnce(manifest: EngineManifest, subject: Subject, blobs: BlobStore, extra: Partial<EngineRequest> = {}) {
  const runner = new DockerRunner(docker, blobs);
  try {
    const run = await runner.run({ ...prepareJob(manifest, { job: `test-${Date.now()}`, subject, tlp: 2, pap: 2, ...extra }, blobs), attempt: 1 });
    const outcome = await interpret(manifest, run, blobs);
    return { run, outcome };
  } finally {
    // A job's containers and volume are removed after it answers: closing waits for that.
    await runner.close();
  }
}

/** Containers and volumes Docket labelled for a job, to prove nothing was left behind. */
export async function leftovers(job?: string): Promise<{ containers: number; volumes: number }> {
  const label = job ? [`docket.job=${job}`] : ['docket.job'];
  const containers = await docker.listContainers({ all: true, filters: { label } });
  const { Volumes } = await docker.listVolumes({ filters: { label } });
  return { containers: containers.length, volumes: (Volumes ?? []).length };
}

/**
 * What `count` finds once it finds nothing, or after `limitMs` (30 s) what it still finds: a job's
 * containers and volume are removed in the background after the job answers (DockerRunner.run).
 */
export async function leftoversGone<T extends { containers: number; volumes: number }>(
  count: () => Promise<T>,
  limitMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const left = await count();
    if ((!left.containers && !left.volumes) || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Reads a file from a named volume with a throw-away container (no host path involved). */
export async function readVolumeFile(volume: string, path: string): Promise<string> {
  const container = await docker.createContainer({
    Image: 'docket/base:bookworm', Cmd: ['cat', path], Tty: false,
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/volume', ReadOnly: true }] },
  });
  try {
    await container.start();
    await container.wait();
    const logs = await container.logs({ stdout: true, stderr: false });
    return demuxLogs(logs);
  } finally {
    await container.remove({ force: true });
  }
}

/** Strips Docker's 8-byte frame headers from a non-TTY log buffer. */
function demuxLogs(buffer: Buffer): string {
  let text = '';
  for (let offset = 0; offset + 8 <= buffer.length;) {
    const length = buffer.readUInt32BE(offset + 4);
    text += buffer.subarray(offset + 8, offset + 8 + length).toString('utf8');
    offset += 8 + length;
  }
  return text;
}
