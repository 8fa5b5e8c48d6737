import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Uploaded samples, reports, API key hashes and the Temporal database are for Docket's user alone.
 * Every process sets umask 077, so what it creates is 0700/0600; this also closes a data folder an
 * older Docket left 0755/0644: the folder and its top-level entries. Deeper entries keep their old
 * modes, but no other user can reach them through a 0700 folder, and re-walking a large blob store at
 * every start would cost more than it protects.
 */
export async function secureDataDir(dir: string, warn: (message: string) => void): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await chmod(dir, 0o700);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await chmod(join(dir, entry.name), 0o700);
      else if (entry.isFile()) await chmod(join(dir, entry.name), 0o600);
    }
  } catch (error) {
    warn(`data: cannot make ${dir} private to this user (${(error as Error).message}); other users of this host may read uploads and reports: chown it to the user running Docket`);
  }
}

/** The umask every Docket process sets: nothing it creates is readable by other users. */
export const PRIVATE_UMASK = 0o077;
