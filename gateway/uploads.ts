import { basename } from 'node:path';

const MAX_FILENAME = 200;

/** A client's file name reduced to a safe base name: no path, no control characters, bounded length. */
export function sanitizeFilename(name: string | undefined): string {
  const base = basename((name ?? '').replace(/\\/g, '/'))
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .replace(/^\.+/, '')
    .trim();
  return (base || 'upload').slice(0, MAX_FILENAME);
}
