import { deflateRawSync } from 'node:zlib';
import { APK, BINARY, detectFileType, FileTypeSniffer, JAR, TEXT, ZIP } from '../../infra/file-type';

/** A zip archive as zip tools write it: a local header and deflated data per entry, then the central directory. */
function zip(entries: Record<string, string>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(entries)) {
    const data = deflateRawSync(Buffer.from(content));
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(content.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(content.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(centrals.length / 2, 8);
  end.writeUInt16LE(centrals.length / 2, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Feeds the bytes in small pieces, as a network upload arrives, so names straddle chunks. */
async function sniffInChunks(bytes: Buffer, size: number): Promise<string> {
  const sniffer = new FileTypeSniffer();
  async function* chunks() {
    for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
  }
  const passed: Buffer[] = [];
  for await (const chunk of sniffer.watch(chunks())) passed.push(Buffer.from(chunk));
  expect(Buffer.concat(passed).equals(bytes)).toBe(true);
  return sniffer.contentType();
}

describe('file types detected from the bytes', () => {
  const padding = 'x'.repeat(20_000);

  it('tells an APK from a JAR from a plain zip by the entries inside, whatever the chunking', async () => {
    const apk = zip({ 'res/layout/main.xml': padding, 'AndroidManifest.xml': '<manifest/>', 'classes.dex': 'dex\n035' });
    const jar = zip({ 'META-INF/MANIFEST.MF': 'Manifest-Version: 1.0\n', 'App.class': padding });
    const plain = zip({ 'notes.txt': padding });
    for (const size of [7, 4096, 1 << 20]) {
      expect(await sniffInChunks(apk, size)).toBe(APK);
      expect(await sniffInChunks(jar, size)).toBe(JAR);
      expect(await sniffInChunks(plain, size)).toBe(ZIP);
    }
  });

  it('names common formats by their magic numbers', () => {
    expect(detectFileType(Buffer.from('%PDF-1.7\n%âãÏÓ\n'))).toBe('application/pdf');
    expect(detectFileType(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0]))).toBe('application/x-executable');
    expect(detectFileType(Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00]))).toBe('application/x-dosexec');
  });

  it('calls UTF-8 without NUL bytes text, even when a character is cut at the end of the head', async () => {
    expect(detectFileType(Buffer.from('Just some notes about evil.example\n'))).toBe(TEXT);
    const long = Buffer.from(`${'a'.repeat(8191)}é and more`);
    expect(await sniffInChunks(long, 1000)).toBe(TEXT);
  });

  it('calls anything else, and an empty file, application/octet-stream', () => {
    expect(detectFileType(Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe]))).toBe(BINARY);
    expect(detectFileType(Buffer.from([0xc3, 0x28, 0x41]))).toBe(BINARY);
    expect(detectFileType(Buffer.alloc(0))).toBe(BINARY);
  });
});
