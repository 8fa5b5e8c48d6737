import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

/** What a key may do; each role includes the ones before it. */
export const ROLES = ['read', 'analyze', 'respond', 'admin'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export const KEY_PREFIX = 'dk_';

const KeyRecord = z.object({
  id: z.string(),
  name: z.string(),
  role: Role,
  /**
   * sha256 of the whole key, not scrypt: a key is 256 random bits, so no dictionary or brute force
   * can reach it and a slow hash adds no strength. A slow hash would instead cost ~50 ms of CPU on
   * every request, and every request with a made-up key, which is a denial of service handed to
   * anyone who can reach the port. scrypt is for secrets people choose; these are not.
   */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.string(),
  revoked: z.string().optional(),
});
export type KeyRecord = z.infer<typeof KeyRecord>;

const KeyFile = z.object({ version: z.literal(1), keys: z.array(KeyRecord) });
type KeyFile = z.infer<typeof KeyFile>;

/** A key as shown to people: never its hash. */
export type KeyInfo = Omit<KeyRecord, 'sha256'>;

export class KeyStoreError extends Error {}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/**
 * API keys in one JSON file (`<data dir>/keys.json`, mode 0600) holding only hashes. The gateway
 * re-reads the file whenever it changes on disk, so `keys create` and `keys revoke` take effect on a
 * running gateway without a restart.
 */
export class KeyStore {
  private cache?: { mtimeMs: number; size: number; data: KeyFile };

  constructor(readonly file: string) {}

  /** Makes a key; the returned secret is the only copy there will ever be. */
  async create(name: string, role: Role): Promise<{ key: string; info: KeyInfo }> {
    if (!NAME.test(name)) throw new KeyStoreError(`a key name is 1-64 letters, digits, _ . @ -, got ${JSON.stringify(name)}`);
    const data = await this.read();
    if (data.keys.some((record) => record.name === name && !record.revoked)) {
      throw new KeyStoreError(`there is already an active key named ${name}: revoke it first or choose another name`);
    }
    const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const record: KeyRecord = { id: randomBytes(4).toString('hex'), name, role, sha256: hashKey(key), created: new Date().toISOString() };
    await this.write({ ...data, keys: [...data.keys, record] });
    return { key, info: withoutHash(record) };
  }

  async list(): Promise<KeyInfo[]> {
    return (await this.read()).keys.map(withoutHash);
  }

  async revoke(id: string): Promise<KeyInfo> {
    const data = await this.read();
    const record = data.keys.find((candidate) => candidate.id === id);
    if (!record) throw new KeyStoreError(`no key with id ${id}: npm run keys -- list shows the ids`);
    if (!record.revoked) {
      record.revoked = new Date().toISOString();
      await this.write(data);
    }
    return withoutHash(record);
  }

  /** The active key matching `key`, comparing against every stored hash in constant time. */
  async authenticate(key: string): Promise<KeyInfo | undefined> {
    const presented = Buffer.from(hashKey(key), 'hex');
    let match: KeyRecord | undefined;
    for (const record of (await this.read()).keys) {
      // No early exit: the time taken does not depend on which record, if any, matched.
      if (timingSafeEqual(presented, Buffer.from(record.sha256, 'hex')) && !record.revoked) match = record;
    }
    return match && withoutHash(match);
  }

  async hasActiveKeys(): Promise<boolean> {
    return (await this.read()).keys.some((record) => !record.revoked);
  }

  private async read(): Promise<KeyFile> {
    let info;
    try {
      info = await stat(this.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
      throw error;
    }
    if (this.cache && this.cache.mtimeMs === info.mtimeMs && this.cache.size === info.size) return this.cache.data;
    let parsed;
    try {
      parsed = KeyFile.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
    } catch (error) {
      throw new KeyStoreError(`${this.file} is not valid JSON (${(error as Error).message}); restore it or remove it and create new keys`);
    }
    if (!parsed.success) throw new KeyStoreError(`${this.file} is not a Docket key file: ${parsed.error.issues[0]?.message}`);
    this.cache = { mtimeMs: info.mtimeMs, size: info.size, data: parsed.data };
    return parsed.data;
  }

  private async write(data: KeyFile): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    // Write then rename, so a gateway reading concurrently sees the old file or the new one, never half.
    const temporary = `${this.file}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    await rename(temporary, this.file);
    this.cache = undefined;
  }
}

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function withoutHash(record: KeyRecord): KeyInfo {
  const { sha256: _, ...info } = record;
  return info;
}
