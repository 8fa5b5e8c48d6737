import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineReport } from '../core/investigation';

/** Where cache entries are kept: small texts by name, in the blob store's backend. */
export interface CacheEntries {
  read(name: string): Promise<string | undefined>;
  write(name: string, text: string): Promise<void>;
  /** Removes entries last written before `cutoff`; answers how many. */
  removeOlderThan(cutoff: Date): Promise<number>;
}

interface Entry {
  storedAt: number;
  report: EngineReport;
}

/**
 * Reuses an engine's report on the same input: the key covers the engine, the image ID it ran, its
 * (expanded) config, the subject and the arguments, so a new image or config never reuses an old
 * result. Entries are small JSON texts beside the blob store (files, or S3 objects); their age decides
 * freshness.
 */
export class ResultCache {
  constructor(private readonly entries: CacheEntries) {}

  static key(parts: { engine: string; imageId: string; config: unknown; subject: string; args?: unknown; parameters?: unknown }): string {
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  }

  /** A fresh report, or undefined; an unreadable entry or an unreachable store is a miss, never a failed job. */
  async get(key: string, maxAgeMs: number): Promise<EngineReport | undefined> {
    if (maxAgeMs <= 0) return undefined;
    try {
      const text = await this.entries.read(key);
      if (text === undefined) return undefined;
      const entry = JSON.parse(text) as Entry;
      if (Date.now() - entry.storedAt > maxAgeMs) return undefined;
      return entry.report;
    } catch {
      return undefined;
    }
  }

  async put(key: string, report: EngineReport): Promise<void> {
    const entry: Entry = { storedAt: Date.now(), report };
    await this.entries.write(key, JSON.stringify(entry));
  }

  async removeOlderThan(cutoff: Date): Promise<number> {
    return this.entries.removeOlderThan(cutoff);
  }
}

/** Entries as `<dir>/<key>.json`, written whole by rename so a reader never parses half an entry. */
export class FsCacheEntries implements CacheEntries {
  constructor(private readonly dir: string) {}

  async read(name: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(name), 'utf8');
    } catch {
      return undefined;
    }
  }

  async write(name: string, text: string): Promise<void> {
    // Reports can quote the samples they describe: Docket's user alone may read them.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Two jobs of one process may store the same key at once: each writes its own temporary file.
    const tmp = `${this.path(name)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, this.path(name));
  }

  async removeOlderThan(cutoff: Date): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile() || info.mtime >= cutoff) continue;
      await rm(path, { force: true });
      removed += 1;
    }
    return removed;
  }

  private path(name: string): string {
    return join(this.dir, `${name}.json`);
  }
}
