import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineReport } from '../core/investigation';

/**
 * Reuses an engine's report on the same input: the key covers the engine, the image ID it ran, its
 * (expanded) config, the subject and the arguments, so a new image or config never reuses an old
 * result. Entries are small JSON files beside the blob store; their age decides freshness.
 */
export class ResultCache {
  constructor(private readonly dir: string) {}

  static key(parts: { engine: string; imageId: string; config: unknown; subject: string; args?: unknown; parameters?: unknown }): string {
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  }

  async get(key: string, maxAgeMs: number): Promise<EngineReport | undefined> {
    if (maxAgeMs <= 0) return undefined;
    try {
      const entry = JSON.parse(await readFile(this.path(key), 'utf8')) as { storedAt: number; report: EngineReport };
      if (Date.now() - entry.storedAt > maxAgeMs) return undefined;
      return entry.report;
    } catch {
      return undefined;
    }
  }

  async put(key: string, report: EngineReport): Promise<void> {
    // Reports can quote the samples they describe: Docket's user alone may read them.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path(key)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ storedAt: Date.now(), report }), { mode: 0o600 });
    await rename(tmp, this.path(key));
  }

  private path(key: string): string {
    return join(this.dir, `${key}.json`);
  }
}
