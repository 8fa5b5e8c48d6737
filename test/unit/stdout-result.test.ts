import { decodeStdout } from '../../core/stdout-result';

const text = (decoded: ReturnType<typeof decodeStdout>) => (decoded.ok ? Buffer.from(decoded.bytes).toString() : `error: ${decoded.error}`);

describe('stdout results, read as the manifest says', () => {
  it('keeps text as printed, even a 32-character hex md5 that is also valid base64', () => {
    const md5 = '44d88612fea8a8f36de82e1278abb02f\n';
    const decoded = decodeStdout(Buffer.from(md5), 'text');
    expect(decoded).toMatchObject({ ok: true, decoded: false, contentType: 'text/plain; charset=utf-8' });
    expect(text(decoded)).toBe(md5);
  });

  it('decodes base64 across lines when the engine says stdout: base64 (CloudPassage tasks)', () => {
    const encoded = Buffer.from('{"hosts": 12, "issues": 3}').toString('base64').replace(/(.{8})/g, '$1\n');
    const decoded = decodeStdout(Buffer.from(encoded), 'base64');
    expect(decoded).toMatchObject({ ok: true, decoded: true });
    expect(text(decoded)).toBe('{"hosts": 12, "issues": 3}');
  });

  it.each(['not base64 at all, clearly!', 'QUJ', 'QU=J'])('refuses %p from an engine that promised base64, saying so', (printed) => {
    const decoded = decodeStdout(Buffer.from(printed), 'base64');
    expect(decoded.ok).toBe(false);
    expect(text(decoded)).toContain('not base64');
  });

  it('keeps JSON as printed and labels it, and refuses output that is not JSON', () => {
    expect(decodeStdout(Buffer.from('{"ok": true}\n'), 'json')).toMatchObject({ ok: true, contentType: 'application/json' });
    const bad = decodeStdout(Buffer.from('ok: true'), 'json');
    expect(bad.ok).toBe(false);
    expect(text(bad)).toContain('not JSON');
  });
});
