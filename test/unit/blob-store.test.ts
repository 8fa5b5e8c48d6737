import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobTooLargeError } from '../../infra/blob-store';
import { FsBlobStore } from '../../infra/blob-store-fs';
import { tempBlobStore } from '../helpers/engines';

/** What only the filesystem store has: its folders and file modes. The shared suite is test/integration/blob-stores.test.ts. */
describe('the filesystem blob store', () => {
  it('writes through its tmp folder and leaves it empty after a refused upload', async () => {
    const blobs = await tempBlobStore();
    const tooMuch = Readable.from((function* () { for (let i = 0; i < 10; i += 1) yield Buffer.alloc(1024, i); })());
    await expect(blobs.put(tooMuch, { limit: 4096 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(readdirSync(join(blobs.root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(blobs.root, 'sha256'))).toEqual([]);
  });

  it('keeps blobs private to its user, folders 0700 and files 0600, even under a umask that would share them', async () => {
    const previous = process.umask(0);
    try {
      const data = join(mkdtempSync(join(tmpdir(), 'docket-private-')), 'data');
      const blobs = await new FsBlobStore(join(data, 'blobs')).init();
      const put = await blobs.putBuffer('a sample nobody else on this host may read');
      const mode = (path: string) => statSync(path).mode & 0o777;
      for (const folder of [data, blobs.root, join(blobs.root, 'tmp'), join(blobs.root, 'sha256'), join(blobs.root, 'sha256', put.sha256.slice(0, 2))]) {
        expect([folder, mode(folder)]).toEqual([folder, 0o700]);
      }
      expect(mode(blobs.pathOf(put.sha256))).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });
});
