import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobStore, BlobTooLargeError, ChecksumMismatchError } from '../../infra/blob-store';
import { tempBlobStore } from '../helpers/engines';

const chunks = (count: number, size: number) => Readable.from((function* () {
  for (let i = 0; i < count; i += 1) yield Buffer.alloc(size, i % 256);
})());

describe('blob store', () => {
  it('stores by sha256 computed while streaming', async () => {
    const blobs = await tempBlobStore();
    const data = Buffer.from('a sample worth keeping');
    const put = await blobs.putBuffer(data);
    expect(put).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), size: data.length, truncated: false });
    expect((await blobs.read(put.sha256)).toString()).toBe('a sample worth keeping');
  });

  it('refuses past the limit and leaves nothing behind', async () => {
    const blobs = await tempBlobStore();
    await expect(blobs.put(chunks(10, 1024), { limit: 4096 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(readdirSync(join(blobs.root, 'tmp'))).toEqual([]);
    expect(readdirSync(join(blobs.root, 'sha256'))).toEqual([]);
  });

  it('keeps the first bytes and says so when asked to truncate', async () => {
    const blobs = await tempBlobStore();
    const put = await blobs.put(chunks(10, 1024), { limit: 2500, truncate: true });
    expect(put).toMatchObject({ size: 2500, truncated: true });
  });

  it('refuses content that does not match the sha256 the client sent', async () => {
    const blobs = await tempBlobStore();
    await expect(blobs.putBuffer('abc', { expectSha256: 'f'.repeat(64) })).rejects.toBeInstanceOf(ChecksumMismatchError);
    expect(readdirSync(join(blobs.root, 'tmp'))).toEqual([]);
  });

  it('keeps blobs private to its user, folders 0700 and files 0600, even under a umask that would share them', async () => {
    const previous = process.umask(0);
    try {
      const data = join(mkdtempSync(join(tmpdir(), 'docket-private-')), 'data');
      const blobs = await new BlobStore(join(data, 'blobs')).init();
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

  it('reads a prefix without reading the whole blob', async () => {
    const blobs = await tempBlobStore();
    const put = await blobs.putBuffer('0123456789');
    expect((await blobs.read(put.sha256, 4)).toString()).toBe('0123');
  });
});
