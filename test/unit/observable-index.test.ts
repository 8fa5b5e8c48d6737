import { createHash } from 'node:crypto';
import { parseInteraction } from '../../core/chatops';
import type { Subject } from '../../core/investigation';
import { describeInput, INDEX_BYTES, INDEX_VALUE, indexValue, observableIndex } from '../../core/observable-index';
import { sha256Hex } from '../../core/sha256';

const observable = (type: 'domain' | 'url' | 'ip' | 'ipv6' | 'other' | 'sha256', data: string): Subject => ({ kind: 'observable', observable: { type, data } });

describe('sha256Hex', () => {
  it.each(['', 'abc', 'a'.repeat(55), 'a'.repeat(56), 'a'.repeat(119), 'évil ♡ 🙂'.repeat(30)])('agrees with node:crypto on %#', (text) => {
    expect(sha256Hex(text)).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
  });
});

describe('indexValue', () => {
  it('gives a value one form whatever its case or defanging, a URL path included', () => {
    expect(indexValue('EVIL[.]Example')).toBe('evil.example');
    expect(indexValue('  evil.example \n')).toBe('evil.example');
    expect(indexValue('hxxps://Evil[.]Example/Gate.PHP?Id=7')).toBe('https://evil.example/gate.php?id=7');
    expect(indexValue('D41D8CD98F00B204E9800998ECF8427E')).toBe('d41d8cd98f00b204e9800998ecf8427e');
    expect(indexValue('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(indexValue('   ')).toBeUndefined();
  });

  it('writes quotes, backslashes, spaces, control and non-ASCII characters as %xx, so no indexed value can change a query', () => {
    const hostile = ["' OR 1=1 --", '") OR ("1"="1', 'back\\slash', 'tab\tand\nnewline', 'Зло.example', 'heart♡separator', '`tick`'];
    for (const value of hostile) {
      const indexed = indexValue(value)!;
      expect(indexed).toMatch(INDEX_VALUE);
      expect(indexed).not.toMatch(/['"\\\s`♡]/);
    }
    expect(indexValue("' OR 1=1")).toBe('%27%20or%201=1');
    expect(indexValue('Зло.example')).toBe('%d0%b7%d0%bb%d0%be.example');
  });

  it('indexes a long value by its digest, and reads its own output back unchanged', () => {
    const long = `https://evil.example/${'A'.repeat(4000)}`;
    expect(indexValue(long)).toBe(`sha256:${createHash('sha256').update(long.toLowerCase()).digest('hex').slice(0, 32)}`);
    for (const value of [long, "it's", 'Evil.Example', 'https://evil.example/Path', 'Зло.example']) {
      const once = indexValue(value)!;
      expect(indexValue(once)).toBe(once);
    }
  });
});

describe('observableIndex', () => {
  it('lists files by sha256 and every type analyzed, artifacts included, each value once', () => {
    const file: Subject = { kind: 'file', file: { sha256: 'ab'.repeat(32), size: 3, filename: 'implant.bin' } };
    const index = observableIndex([file, observable('domain', 'Evil.example'), observable('domain', 'evil[.]example'), observable('url', 'https://evil.example/x')]);
    expect(index.values).toEqual(['ab'.repeat(32), 'evil.example', 'https://evil.example/x']);
    expect(index.types).toEqual(['file', 'domain', 'url']);
    expect(index).toMatchObject({ indexed: 3, of: 3 });
  });

  it(`stops at ${INDEX_BYTES} bytes of JSON, keeping the first values admitted, and says how many were left out`, () => {
    const subjects = Array.from({ length: 300 }, (_, i) => observable('other', `value-${i}-${'x'.repeat(i % 70)}`));
    const index = observableIndex(subjects);
    expect(JSON.stringify(index.values).length).toBeLessThanOrEqual(INDEX_BYTES);
    expect(index.of).toBe(300);
    expect(index.indexed).toBe(index.values.length);
    expect(index.indexed).toBeLessThan(300);
    expect(index.values[0]).toBe('value-0-');
  });
});

describe('describeInput', () => {
  it('names the first few subjects with their searches, and counts the rest', () => {
    const what = describeInput({
      files: [{ sha256: 'cd'.repeat(32), size: 1, filename: 'invoice.pdf' }],
      observables: [{ type: 'domain', data: 'Evil.Example' }],
      text: 'see hxxps://evil[.]example/a and 198.51.100.7 and 198.51.100.8',
    });
    expect(what.items).toEqual([
      { label: 'invoice.pdf', search: 'cd'.repeat(32) },
      { label: 'Evil.Example', search: 'evil.example' },
      { label: 'https://evil.example/a', search: 'https://evil.example/a' },
    ]);
    expect(what.more).toBe(2);
  });

  it('shortens long labels and shows the start of a text that holds no observable', () => {
    const what = describeInput({ files: [], observables: [], text: `  nothing   to see ${'here '.repeat(40)}` });
    expect(what.items).toHaveLength(1);
    expect(what.items[0].search).toBeUndefined();
    expect([...what.items[0].label]).toHaveLength(60);
    expect(what.items[0].label.startsWith('nothing to see here')).toBe(true);
  });
});

describe('chatops seen', () => {
  it('reads `seen <value>` and asks for a value when there is none', () => {
    expect(parseInteraction('seen hxxps://evil[.]example/x')).toEqual({ kind: 'seen', value: 'hxxps://evil[.]example/x' });
    expect(parseInteraction('<@UDOCKETBOT> Seen <http://evil.example|evil.example>')).toEqual({ kind: 'seen', value: 'http://evil.example' });
    expect(parseInteraction('seen')).toEqual({ kind: 'help', topic: 'seen' });
  });
});
