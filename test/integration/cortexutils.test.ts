import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlobStore } from '../../infra/blob-store';
import { ensureImage } from '../../scripts/lib/images';
import { fileSubject, observableSubject, runEngineOnce, tempBlobStore, testManifest } from '../helpers/engines';
import { ROOT } from '../helpers/system';

/** An analyzer built on TheHive's own cortexutils (from PyPI) runs through Docket unchanged. */
const IMAGE = 'docket/test-cortexutils:2.2.1';
const manifest = testManifest({ name: 'keyword', image: IMAGE, protocol: 'cortex', config: { keywords: ['evil', 'payload'] } });

async function buildAnalyzerImage(): Promise<void> {
  const wheels = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'docket', 'wheels');
  mkdirSync(wheels, { recursive: true });
  if (!readdirSync(wheels).some((name) => name.startsWith('cortexutils-2.2.1'))) {
    execFileSync('python3', ['-m', 'pip', 'download', '--no-deps', '--dest', wheels, 'cortexutils==2.2.1'], { stdio: 'pipe' });
  }
  const context = mkdtempSync(join(tmpdir(), 'docket-cortexutils-'));
  cpSync(join(ROOT, 'test/engines/cortexutils-analyzer'), context, { recursive: true });
  for (const wheel of readdirSync(wheels).filter((name) => name.startsWith('cortexutils-2.2.1'))) {
    cpSync(join(wheels, wheel), join(context, wheel));
  }
  if (!existsSync(join(context, 'Dockerfile'))) throw new Error('the analyzer build context is incomplete');
  await ensureImage(IMAGE, context);
}

describe('TheHive Cortex analyzers', () => {
  let blobs: BlobStore;
  beforeAll(async () => {
    await buildAnalyzerImage();
    blobs = await tempBlobStore();
  });

  it('runs a cortexutils analyzer on an observable: taxonomies, extracted artifacts and a file artifact', async () => {
    const { outcome } = await runEngineOnce(manifest, observableSubject('other', 'evil payload calling hxxp://203.0.113.7/x and 198.51.100.23'), blobs);
    expect(outcome.status).toBe('success');
    expect(outcome.taxonomies).toEqual([{ level: 'malicious', namespace: 'Keyword', predicate: 'Hits', value: '2' }]);
    const byType = Object.fromEntries(outcome.artifacts.map((artifact) => [artifact.type, artifact]));
    expect(byType.ip?.data).toBe('198.51.100.23');
    expect(byType.file?.message).toBe('analyst note');
    expect(byType.file?.file?.filename).toBe('keyword-note.txt');
    expect((await blobs.read(byType.file!.file!.sha256)).toString()).toBe('keywords found: evil, payload\n');
  });

  it('gives the analyzer the uploaded file as Cortex does (input/attachment, filename)', async () => {
    const subject = await fileSubject(blobs, 'a harmless text with no keyword', 'notes.txt');
    const { outcome } = await runEngineOnce(manifest, subject, blobs);
    expect(outcome.status).toBe('success');
    expect(outcome.taxonomies[0]).toMatchObject({ level: 'safe', value: '0' });
    const report = JSON.parse((await blobs.read(outcome.result!.sha256)).toString());
    expect(report.full.seen).toBe('a harmless text with no keyword');
  });

  it('keeps the analyzer\'s own error message when it calls error()', async () => {
    const strict = testManifest({ ...manifest, name: 'keyword-strict', command: ['/usr/bin/python3', '-c', 'from cortexutils.analyzer import Analyzer\nAnalyzer().error("API key is missing")'] });
    const { outcome } = await runEngineOnce({ ...strict, command: strict.command }, observableSubject('domain', 'example.org'), blobs);
    expect(outcome.status).toBe('failure');
    expect(outcome.errorMessage).toBe('API key is missing');
  });
});
