import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cachedWorkflowBundle, WORKFLOW_SOURCE_DIRS, workflowSourceKey } from '../../workers/workflow-bundle';

const ROOT = resolve(__dirname, '../..');

/** A copy of the workflow sources that a test may change, bundling against Docket's node_modules. */
function sourceCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'docket-bundle-src-'));
  for (const dir of WORKFLOW_SOURCE_DIRS) cpSync(join(ROOT, dir), join(root, dir), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  return root;
}

describe('the workflow bundle cache', () => {
  let root: string;
  let cacheDir: string;

  beforeAll(() => {
    root = sourceCopy();
    cacheDir = mkdtempSync(join(tmpdir(), 'docket-bundle-cache-'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('bundles once, then serves the same code from the cache while the sources are unchanged', async () => {
    const first = await cachedWorkflowBundle({ root, cacheDir });
    expect(first.outcome).toBe('built');
    expect(first.bundle.code).toContain('investigation');
    const second = await cachedWorkflowBundle({ root, cacheDir });
    expect(second.outcome).toBe('cached');
    expect(second.key).toBe(first.key);
    expect(second.bundle.code).toBe(first.bundle.code);
    expect(readdirSync(cacheDir)).toEqual([`${first.key}.js`]);
  });

  it('bundles again when a workflow source changes, and keeps only the new bundle', async () => {
    const before = await cachedWorkflowBundle({ root, cacheDir });
    const marker = `bundle-marker-${randomBytes(6).toString('hex')}`;
    appendFileSync(join(root, 'workflows', 'index.ts'), `\nexport const bundleMarker = '${marker}';\n`);
    const after = await cachedWorkflowBundle({ root, cacheDir });
    expect(after.outcome).toBe('built');
    expect(after.key).not.toBe(before.key);
    expect(after.bundle.code).toContain(marker);
    expect(before.bundle.code).not.toContain(marker);
    expect(readdirSync(cacheDir)).toEqual([`${after.key}.js`]);
    expect((await cachedWorkflowBundle({ root, cacheDir })).outcome).toBe('cached');
  });

  it('keys on every folder a workflow may import from, and on nothing outside them', () => {
    const before = workflowSourceKey(root);
    writeFileSync(join(root, 'unrelated.ts'), 'export const unrelated = 1;\n');
    expect(workflowSourceKey(root)).toBe(before);
    appendFileSync(join(root, 'core', 'investigation.ts'), '\n// changed\n');
    const afterCore = workflowSourceKey(root);
    expect(afterCore).not.toBe(before);
    writeFileSync(join(root, 'contract', 'added.ts'), 'export const added = 1;\n');
    expect(workflowSourceKey(root)).not.toBe(afterCore);
  });

  it('still bundles when the cache folder cannot be written, and says why', async () => {
    const notAFolder = join(cacheDir, 'a-file');
    writeFileSync(notAFolder, '');
    const warnings: string[] = [];
    const result = await cachedWorkflowBundle({ root, cacheDir: join(notAFolder, 'bundles'), warn: (message) => warnings.push(message) });
    expect(result.outcome).toBe('built');
    expect(result.bundle.code).toContain('investigation');
    expect(warnings).toEqual([expect.stringContaining('cannot cache it')]);
  });
});
