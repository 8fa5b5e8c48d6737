import { expandEnv } from '../../core/engine-manifest';
import { parseSize } from '../../core/units';
import { RefusedKeys } from '../../gateway/auth';

/** Names every JavaScript object answers to, which outside input must not reach through a lookup. */
describe('lookups keyed by outside input', () => {
  it('reads a size unit such as "constructor" as no unit at all, not as a factor found on the prototype', () => {
    expect(parseSize('50constructor')).toBeUndefined();
    expect(parseSize('50m')).toBe(50 * 1024 ** 2);
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])('expands ${%s} in a manifest to nothing when the environment has no such variable', (name) => {
    expect(expandEnv({ token: `[\${${name}}]` }, { API_KEY: 's3cret' })).toEqual({ token: '[]' });
  });

  it('still expands a variable the environment has', () => {
    expect(expandEnv('${API_KEY}', { API_KEY: 's3cret' })).toBe('s3cret');
  });
});

describe('refused keys per address', () => {
  it('blocks an address for the rest of its minute once it has sent the limit, and only that address', () => {
    let now = 1_000_000;
    const refused = new RefusedKeys(2, () => now);
    refused.record('203.0.113.5');
    expect(refused.blockedFor('203.0.113.5')).toBe(0);
    now += 20_000;
    refused.record('203.0.113.5');
    expect(refused.blockedFor('203.0.113.5')).toBe(40);
    expect(refused.blockedFor('203.0.113.6')).toBe(0);
    now += 40_000;
    expect(refused.blockedFor('203.0.113.5')).toBe(0);
  });

  it('counts an address named like a prototype property from zero', () => {
    const refused = new RefusedKeys(1);
    expect(refused.blockedFor('__proto__')).toBe(0);
    expect(refused.blockedFor('constructor')).toBe(0);
    refused.record('constructor');
    expect(refused.blockedFor('constructor')).toBeGreaterThan(0);
  });

  it('forgets the oldest address rather than growing without bound', () => {
    const refused = new RefusedKeys(1);
    refused.record('first');
    for (let index = 0; index < 10_000; index += 1) refused.record(`spray-${index}`);
    expect(refused.blockedFor('first')).toBe(0);
    expect(refused.blockedFor('spray-9999')).toBeGreaterThan(0);
  });
});
