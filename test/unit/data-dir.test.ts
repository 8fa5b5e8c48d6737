import { chmodSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsCacheEntries, ResultCache } from '../../infra/result-cache';
import type { EngineReport } from '../../core/investigation';
import { secureDataDir } from '../../system/data-dir';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('the data folder', () => {
  it('is created 0700 when it does not exist yet', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'docket-data-')), 'data');
    const warnings: string[] = [];
    await secureDataDir(dir, (message) => warnings.push(message));
    expect(mode(dir)).toBe(0o700);
    expect(warnings).toEqual([]);
  });

  it('closes a folder an older Docket left world-readable: the folder and its top-level folders 0700, its files 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docket-data-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'blobs'), { mode: 0o755 });
    chmodSync(join(dir, 'blobs'), 0o755);
    writeFileSync(join(dir, 'temporal.db'), 'sqlite', { mode: 0o644 });
    chmodSync(join(dir, 'temporal.db'), 0o644);
    await secureDataDir(dir, () => undefined);
    expect([mode(dir), mode(join(dir, 'blobs')), mode(join(dir, 'temporal.db'))]).toEqual([0o700, 0o700, 0o600]);
  });

  it('keeps cached engine reports private to its user, even under a umask that would share them', async () => {
    const previous = process.umask(0);
    try {
      const dir = join(mkdtempSync(join(tmpdir(), 'docket-cache-')), 'cache');
      const cache = new ResultCache(new FsCacheEntries(dir));
      const key = ResultCache.key({ engine: 'fileinfo', imageId: 'sha256:1', config: {}, subject: 'file:abc' });
      await cache.put(key, { engine: 'fileinfo', status: 'success' } as EngineReport);
      expect(mode(dir)).toBe(0o700);
      expect(mode(join(dir, `${key}.json`))).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });
});
