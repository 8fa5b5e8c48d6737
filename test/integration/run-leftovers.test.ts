import { join } from 'node:path';
import type { BlobRef } from '../../core/investigation';
import type { BlobStore } from '../../infra/blob-store';
import type { EngineRun } from '../../infra/engine-runner';
import type { Outcome } from '../../activities/protocols';
import { ensureImage } from '../../scripts/lib/images';
import { observableSubject, runEngineOnce, tempBlobStore, testManifest } from '../helpers/engines';
import { ROOT } from '../helpers/system';

/**
 * Every blob a run stores belongs to its report: stdout and stderr (a failure keeps them combined as
 * `logs`), and output files the protocol did not take, are named in `raw`. Without that they were
 * blobs no workflow referenced, which the chaos run's blob check reported as orphans.
 */
const IMAGE = 'docket/test-hostile:1';
const hostile = (mode: string, fields: Record<string, unknown> = {}) =>
  testManifest({ name: `hostile-${mode}`, image: IMAGE, protocol: 'stdout', command: ['/hostile', mode], timeout: '60s', ...fields });

/** The blobs an outcome names, `rawRef`'s list included. */
async function named(outcome: Outcome, blobs: BlobStore): Promise<Set<string>> {
  const refs: Array<BlobRef | undefined> = [outcome.result, outcome.logs, outcome.rawRef, ...(outcome.raw ?? []), ...outcome.artifacts.map((artifact) => artifact.file)];
  if (outcome.rawRef) refs.push(...(JSON.parse((await blobs.read(outcome.rawRef.sha256)).toString('utf8')) as BlobRef[]));
  return new Set(refs.filter((ref): ref is BlobRef => ref !== undefined).map((ref) => ref.sha256));
}

/** What the run stored, but the empty blob every silent stream shares. */
function stored(run: EngineRun): string[] {
  return [run.stdout, run.stderr, ...run.outputs.map((file) => file.blob)].filter((blob) => blob.size > 0).map((blob) => blob.sha256);
}

describe('what a run stores', () => {
  let blobs: BlobStore;
  beforeAll(async () => {
    await ensureImage(IMAGE, join(ROOT, 'test/engines/hostile'), { force: true });
    blobs = await tempBlobStore();
  });

  it('names stdout and stderr of a failed run beside their combined logs', async () => {
    const { run, outcome } = await runEngineOnce(hostile('noisy'), observableSubject('other', 'x'), blobs);
    expect(outcome.status).toBe('failure');
    expect(run.stdout.size).toBeGreaterThan(0);
    expect(run.stderr.size).toBeGreaterThan(0);
    expect((await blobs.read(outcome.logs!.sha256)).toString()).toBe('a line on stderr\na line on stdout\n');
    expect(outcome.raw?.map((ref) => ref.filename).sort()).toEqual(['stderr', 'stdout']);
    const names = await named(outcome, blobs);
    for (const sha of stored(run)) expect(names).toContain(sha);
  });

  it('names an output.json the protocol could not read', async () => {
    const { run, outcome } = await runEngineOnce(hostile('garbage', { protocol: 'cortex' }), observableSubject('other', 'x'), blobs);
    expect(outcome.errorMessage).toContain('wrote an output.json Docket cannot read');
    expect(outcome.raw).toEqual([expect.objectContaining({ filename: 'output.json', size: 'this is {not json\n'.length })]);
    const names = await named(outcome, blobs);
    expect(stored(run).length).toBeGreaterThan(0);
    for (const sha of stored(run)) expect(names).toContain(sha);
  });

  it('adds nothing when the report already names all of it', async () => {
    const { run, outcome } = await runEngineOnce(hostile('nooutput', { protocol: 'cortex' }), observableSubject('other', 'x'), blobs);
    // Only stderr was written: the combined logs are the same bytes, so the same blob.
    expect(run.stdout.size).toBe(0);
    expect(outcome.logs?.sha256).toBe(run.stderr.sha256);
    expect(outcome.raw).toBeUndefined();
  });
});
