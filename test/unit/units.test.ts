import { formatBytes, parseDuration, parseSize } from '../../core/units';

describe('human units', () => {
  it.each([
    ['50m', 50 * 1024 ** 2], ['1g', 1024 ** 3], ['16MiB', 16 * 1024 ** 2], ['4096', 4096], ['1.5k', 1536], [2048, 2048],
  ])('reads the size %p as %p bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['fifty', '10 parsecs', '-1m', '', 'm'])('refuses the size %p', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it.each([
    ['240s', 240_000], ['5m', 300_000], ['1h', 3_600_000], ['500ms', 500], ['30', 30_000], [2, 2000],
  ])('reads the duration %p as %p ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['soon', '5 weeks', '1y'])('refuses the duration %p', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('formats byte counts for people', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(50 * 1024 ** 2)).toBe('50.0 MiB');
  });
});
