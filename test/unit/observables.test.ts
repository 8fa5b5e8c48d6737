import fc from 'fast-check';
import { Observable } from '../../core/investigation';
import {
  defang, extractObservables, isPrivateOrReserved, normalizeIp, refang, type ExtractOptions,
} from '../../core/observables';

const ip = (data: string): Observable => ({ type: 'ip', data });
const ipv6 = (data: string): Observable => ({ type: 'ipv6', data });
const domain = (data: string): Observable => ({ type: 'domain', data });
const fqdn = (data: string): Observable => ({ type: 'fqdn', data });
const url = (data: string): Observable => ({ type: 'url', data });
const mail = (data: string): Observable => ({ type: 'mail', data });
const md5 = (data: string): Observable => ({ type: 'md5', data });
const sha1 = (data: string): Observable => ({ type: 'sha1', data });
const sha256 = (data: string): Observable => ({ type: 'sha256', data });
const cve = (data: string): Observable => ({ type: 'cve', data });

const PHISHING_MAIL = `From: "Microsoft 365" <no-reply@micros0ft-support.com>
Subject: Action required: your password expires today

Dear user,
Your password expires today. Keep it at hxxps[://]login.micros0ft-support[.]com/owa/auth?user=jane.doe@example-corp.com&session=8f2a
or write to helpdesk[at]micros0ft-support[.]com before 5 PM.
Attachment: Password_Policy.pdf.exe (MD5: 5D41402ABC4B2A76B9719D911017C592)
X-Originating-IP: [185.220.101.42]`;

const THREAT_REPORT = `In March 2024 the actor exploited CVE-2023-4966 (Citrix Bleed) and cve-2024-3400 against edge
devices. The loader beaconed to update.cdn-telemetry.net and cdn-telemetry[.]net over 443, resolving to
45.133.1.20 and 2a0e:97c0:3e3:1::25. The second stage (SHA256
9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) was served from
hxxp://91.215.85.17:8080/d/stage2.bin. Version 4.2.1 of the implant was dropped as svchost.exe.`;

const DEFANGED_IOC_LIST = `# IOCs, defanged
hxxp://malware-drop[.]ru/payload[.]exe
hXXps[:]//secure-paypa1[.]com/signin?next=%2Faccount
FTP[://]files[.]darknet-share[.]top/dump.tar.gz
evil(dot)example(dot)co(dot)uk
c2{.}badhost{.}xyz
attacker [at] proton [dot] me
91[.]243[.]44[.]11
2001:db8:0:0:0:0:0:1
da39a3ee5e6b4b0d3255bfef95601890afd80709`;

const FALSE_POSITIVE_BAIT = `Attached report.pdf, setup.exe and index.html; upgrade to 1.2.3 (build 10.0.19041.1) before
12:30:45 UTC. Meeting at 09:15, aspect ratio 16:9, MAC 00:1a:2b:3c:4d:5e, GUID 550e8400-e29b-41d4-a716-446655440000.
Dump: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011, order 12345678901234567890123456789012,
placeholder deadbeefdeadbeefdeadbeefdeadbeef, constant 0xd41d8cd98f00b204e9800998ecf8427e, std::vector, e.g. i.e. U.S.A.
Scripts invoice.zip, exploit.py, install.sh, README.md, lib.rs and backdoor.pl were in ~/Downloads.
Internal hosts 10.1.2.3, 192.168.0.10, 127.0.0.1, 169.254.10.1, 100.64.3.2, fe80::1 and ::1; old 010.1.1.1 and 256.1.1.1.`;

describe('extracting observables from realistic text', () => {
  it.each<[string, string, ExtractOptions, Observable[]]>([
    ['a phishing mail: sender, defanged link, reply-to, attachment hash and relay', PHISHING_MAIL, {}, [
      mail('no-reply@micros0ft-support.com'),
      url('https://login.micros0ft-support.com/owa/auth?user=jane.doe@example-corp.com&session=8f2a'),
      mail('helpdesk@micros0ft-support.com'),
      md5('5d41402abc4b2a76b9719d911017c592'),
      ip('185.220.101.42'),
    ]],
    ['a threat report: CVEs, host names, addresses, a hash and a URL on an IP', THREAT_REPORT, {}, [
      cve('CVE-2023-4966'),
      cve('CVE-2024-3400'),
      fqdn('update.cdn-telemetry.net'),
      domain('cdn-telemetry.net'),
      ip('45.133.1.20'),
      ipv6('2a0e:97c0:3e3:1::25'),
      sha256('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'),
      url('http://91.215.85.17:8080/d/stage2.bin'),
    ]],
    ['a defanged IOC list in every usual notation', DEFANGED_IOC_LIST, {}, [
      url('http://malware-drop.ru/payload.exe'),
      url('https://secure-paypa1.com/signin?next=%2Faccount'),
      url('ftp://files.darknet-share.top/dump.tar.gz'),
      fqdn('evil.example.co.uk'),
      fqdn('c2.badhost.xyz'),
      mail('attacker@proton.me'),
      ip('91.243.44.11'),
      ipv6('2001:db8::1'),
      sha1('da39a3ee5e6b4b0d3255bfef95601890afd80709'),
    ]],
    ['the same IOC list without private and documentation addresses', DEFANGED_IOC_LIST, { dropPrivate: true }, [
      url('http://malware-drop.ru/payload.exe'),
      url('https://secure-paypa1.com/signin?next=%2Faccount'),
      url('ftp://files.darknet-share.top/dump.tar.gz'),
      fqdn('evil.example.co.uk'),
      fqdn('c2.badhost.xyz'),
      mail('attacker@proton.me'),
      ip('91.243.44.11'),
      sha1('da39a3ee5e6b4b0d3255bfef95601890afd80709'),
    ]],
    ['bait: file names, versions, times, MACs, odd hex runs; only the internal addresses are real', FALSE_POSITIVE_BAIT, {}, [
      ip('10.1.2.3'), ip('192.168.0.10'), ip('127.0.0.1'), ip('169.254.10.1'), ip('100.64.3.2'), ipv6('fe80::1'), ipv6('::1'),
    ]],
    ['bait with private addresses dropped: nothing', FALSE_POSITIVE_BAIT, { dropPrivate: true }, []],
  ])('%s', (_, text, options, expected) => {
    expect(extractObservables(text, options)).toEqual(expected);
  });
});

describe('refanging and defanging', () => {
  it.each([
    ['hxxp://evil[.]com', 'http://evil.com'],
    ['hXXps[://]evil[.]com/a', 'https://evil.com/a'],
    ['HXXPS[:]//evil(.)com', 'https://evil.com'],
    ['evil(dot)com evil[dot]com evil{.}com evil[DOT]com', 'evil.com evil.com evil.com evil.com'],
    ['john[at]evil.com john(at)evil.com john[@]evil.com', 'john@evil.com john@evil.com john@evil.com'],
    ['john [at] evil [dot] com', 'john@evil.com'],
    ['a list (dot)\nnext line', 'a list.\nnext line'],
    ['10[.]0[.]0[.]1', '10.0.0.1'],
    ['nothing to undo: a.b, c@d, x://y', 'nothing to undo: a.b, c@d, x://y'],
  ])('refangs %p as %p', (defanged, refanged) => {
    expect(refang(defanged)).toBe(refanged);
  });

  it.each([
    ['https://evil.com/a.php', 'hxxps[://]evil[.]com/a[.]php'],
    ['HTTP://evil.com', 'hxxp[://]evil[.]com'],
    ['ftp://files.evil.com', 'ftp[://]files[.]evil[.]com'],
    ['john@evil.com', 'john[@]evil[.]com'],
    ['8.8.8.8', '8[.]8[.]8[.]8'],
  ])('defangs %p as %p', (value, defanged) => {
    expect(defang(value)).toBe(defanged);
  });
});

describe('host names', () => {
  it.each<[string, Observable[]]>([
    ['evil.com', [domain('evil.com')]],
    ['www.evil.com', [fqdn('www.evil.com')]],
    ['mail.evil.example.com', [fqdn('mail.evil.example.com')]],
    ['evil.co.uk', [domain('evil.co.uk')]],
    ['www.evil.co.uk', [fqdn('www.evil.co.uk')]],
    ['xn--80ak6aa92e.com', [domain('xn--80ak6aa92e.com')]],
    ['Visit EVIL.Com.', [domain('evil.com')]],
    ['co.uk', []],
    ['evil.example', []],
    ['report.pdf setup.exe index.html archive.tar.gz', []],
    ['invoice.zip exploit.py run.sh', []],
    ['cdn.evil.zip', [fqdn('cdn.evil.zip')]],
    ['evil.com/gate.php', [domain('evil.com')]],
    ['foo_bar.evil.com', []],
    ['10.0.0.1-a.evil.com', [fqdn('10.0.0.1-a.evil.com')]],
    ['d41d8cd98f00b204e9800998ecf8427e.exfil.evil.com', [fqdn('d41d8cd98f00b204e9800998ecf8427e.exfil.evil.com')]],
  ])('reads %p as %j', (text, expected) => {
    expect(extractObservables(text)).toEqual(expected);
  });
});

describe('URLs', () => {
  it.each<[string, Observable[]]>([
    ['(see https://evil.com/a)', [url('https://evil.com/a')]],
    ['Go to https://evil.com/a.', [url('https://evil.com/a')]],
    ["'https://evil.com/a', \"https://evil.com/b\"", [url('https://evil.com/a'), url('https://evil.com/b')]],
    ['<https://evil.com/a>', [url('https://evil.com/a')]],
    ['[here](https://evil.com/a)', [url('https://evil.com/a')]],
    ['https://en.wikipedia.org/wiki/Foo_(bar)', [url('https://en.wikipedia.org/wiki/Foo_(bar)')]],
    ['https://evil.com/a,b;c!', [url('https://evil.com/a,b;c')]],
    ['HTTPS://Evil.COM:8443/Path?Q=1#Top', [url('https://evil.com:8443/Path?Q=1#Top')]],
    ['http://[2001:DB8:0:0::1]:80/x', [url('http://[2001:db8::1]:80/x')]],
    ['http://intranet/wiki', [url('http://intranet/wiki')]],
    ['https://cdn.evil.zip/a', [url('https://cdn.evil.zip/a')]],
    ['https://evil.com/x and later evil.com on its own', [url('https://evil.com/x'), domain('evil.com')]],
    ['https://evil.com/download?md5=d41d8cd98f00b204e9800998ecf8427e', [url('https://evil.com/download?md5=d41d8cd98f00b204e9800998ecf8427e')]],
    ['http://999.1.1.1/ http:// https://-bad-.com/', []],
  ])('reads %p as %j', (text, expected) => {
    expect(extractObservables(text)).toEqual(expected);
  });

  it('drops a URL on a private address when asked, without emitting its host', () => {
    expect(extractObservables('http://192.168.1.1/admin and http://[fe80::1]/', { dropPrivate: true })).toEqual([]);
    expect(extractObservables('http://192.168.1.1/admin')).toEqual([url('http://192.168.1.1/admin')]);
  });

  it('drops a URL longer than an observable may be rather than truncating it', () => {
    expect(extractObservables(`https://evil.com/${'a'.repeat(9000)}`)).toEqual([]);
  });
});

describe('mail addresses', () => {
  it.each<[string, Observable[]]>([
    ['From: Jane.Doe+phish@Evil.Co.UK', [mail('jane.doe+phish@evil.co.uk')]],
    ['write to john@evil.com.', [mail('john@evil.com')]],
    ['mailto:billing@evil.com', [mail('billing@evil.com')]],
    ['admin@evil.zip', [mail('admin@evil.zip')]],
    ['image@2x.png lodash@4.17.21 root@localhost', []],
    ['.john@evil.com john..doe@evil.com', []],
  ])('reads %p as %j', (text, expected) => {
    expect(extractObservables(text)).toEqual(expected);
  });
});

describe('IP addresses', () => {
  it.each<[string, Observable[]]>([
    ['8.8.8.8:53', [ip('8.8.8.8')]],
    ['10.0.0.0/8', [ip('10.0.0.0')]],
    ['255.255.255.255', [ip('255.255.255.255')]],
    ['256.1.1.1 1.2.3 1.2.3.4.5 01.2.3.4 1.2.3.4.com', [fqdn('1.2.3.4.com')]],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', [ipv6('2001:db8::1')]],
    ['2001:db8:0:0:1:0:0:1', [ipv6('2001:db8::1:0:0:1')]],
    ['1:2:3:4:5:6:7:8', [ipv6('1:2:3:4:5:6:7:8')]],
    ['fe80::', [ipv6('fe80::')]],
    ['fe80::1%eth0', [ipv6('fe80::1')]],
    ['gateway fe80::1: down', [ipv6('fe80::1')]],
    ['::ffff:192.0.2.1', [ipv6('::ffff:192.0.2.1')]],
    ['2001:db8::/32', [ipv6('2001:db8::')]],
    ['12:30:45 1:2:3:4:5:6:7:8:9 1::2::3 12345::1 :: fe80:::1 00:1a:2b:3c:4d:5e', []],
  ])('reads %p as %j', (text, expected) => {
    expect(extractObservables(text)).toEqual(expected);
  });

  it.each([
    ['10.1.2.3', true], ['172.31.255.255', true], ['172.32.0.1', false], ['192.168.1.1', true], ['127.0.0.1', true],
    ['169.254.1.1', true], ['100.64.0.1', true], ['0.0.0.0', true], ['192.0.2.10', true], ['198.51.100.7', true],
    ['203.0.113.9', true], ['198.18.0.1', true], ['224.0.0.251', true], ['240.0.0.1', true], ['255.255.255.255', true],
    ['8.8.8.8', false], ['1.1.1.1', false], ['185.220.101.42', false],
    ['::1', true], ['::', true], ['fe80::1', true], ['fd12:3456::1', true], ['ff02::1', true], ['2001:db8::1', true],
    ['3fff::1', true], ['::ffff:10.0.0.1', true], ['::ffff:8.8.8.8', false], ['2001:4860:4860::8888', false],
    ['2a0e:97c0:3e3:1::25', false], ['not an address', false],
  ])('says whether %p is private or reserved: %p', (address, expected) => {
    expect(isPrivateOrReserved(address)).toBe(expected);
  });

  it.each([
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
    ['8.8.8.8', '8.8.8.8'],
  ])('writes %p as %p', (address, canonical) => {
    expect(normalizeIp(address)).toBe(canonical);
  });
});

describe('hashes and CVEs', () => {
  const hex = (length: number) => '0123456789abcdef'.repeat(8).slice(0, length);

  it.each<[string, Observable[]]>([
    [hex(32), [md5(hex(32))]],
    [hex(40), [sha1(hex(40))]],
    [hex(64), [sha256(hex(64))]],
    [hex(64).toUpperCase(), [sha256(hex(64))]],
    [`sha256:${hex(64)}`, [sha256(hex(64))]],
    [`${hex(32)}.exe`, [md5(hex(32))]],
    [`${hex(31)} ${hex(33)} ${hex(50)} ${hex(128)} x${hex(32)} ${hex(32)}g`, []],
    ['CVE-2021-44228, cve-2014-0160 and CVE\u20112017\u20110144', [cve('CVE-2021-44228'), cve('CVE-2014-0160'), cve('CVE-2017-0144')]],
    ['CVE-2021-123 CVE-1988-1234 CVE-2021-44228x', []],
  ])('reads %p as %j', (text, expected) => {
    expect(extractObservables(text)).toEqual(expected);
  });
});

describe('the result', () => {
  it('holds each observable once, in order of first appearance', () => {
    expect(extractObservables('8.8.8.8 evil.com 8[.]8[.]8[.]8 EVIL.COM evil(dot)com 8.8.8.8')).toEqual([ip('8.8.8.8'), domain('evil.com')]);
  });

  it('is capped by the limit, keeping the first ones', () => {
    const text = '1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4';
    expect(extractObservables(text, { limit: 2 })).toEqual([ip('1.1.1.1'), ip('2.2.2.2')]);
    expect(extractObservables(text, { limit: 0 })).toEqual([]);
  });

  it('refuses a negative limit, naming it', () => {
    expect(() => extractObservables('8.8.8.8', { limit: -1 })).toThrow('limit must be 0 or more, got -1');
  });

  it('stops at 1000 observables by default', () => {
    const text = Array.from({ length: 1200 }, (_, i) => `host${i}.example.com`).join(' ');
    expect(extractObservables(text)).toHaveLength(1000);
  });

  it('reads adversarial text in time that grows with its length, not its square (no catastrophic backtracking)', () => {
    // Each pattern at 1/16 of a megabyte and at a whole one. Linear work costs about 16 times more on
    // the larger; a backtracking regex (quadratic or worse) costs 256 times more or far beyond. The
    // cheapest of three runs of each keeps a busy machine's pauses out of the ratio; no absolute time
    // is asserted.
    const patterns: Array<[string, number]> = [['a.', 2], ['abcd:', 5], [')', 1], ['1.', 2], ['a@', 2], [' ', 1], ['x@a.', 4]];
    const cost = (bytes: number) => {
      const texts = patterns.map(([unit, size]) => unit === ')' ? `http://x.com/${unit.repeat(bytes)}` : unit.repeat(Math.floor(bytes / size)));
      let best = Number.POSITIVE_INFINITY;
      for (let round = 0; round < 3; round += 1) {
        const started = process.hrtime.bigint();
        for (const text of texts) extractObservables(text);
        best = Math.min(best, Number(process.hrtime.bigint() - started));
      }
      return best;
    };
    const small = cost(65_536);
    const large = cost(1_048_576);
    expect(large / small).toBeLessThan(64);
  });
});

// Generators of valid values, each with the observable extraction must find for it.
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
const plainTld = fc.constantFrom('com', 'net', 'org', 'ru', 'io', 'xyz', 'top', 'info', 'de');
const domainName = fc.tuple(label, plainTld).map(([name, tld]) => `${name}.${tld}`);
const fqdnName = fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), domainName).map(([subs, name]) => [...subs, name].join('.'));
const segment = fc.stringMatching(/^[A-Za-z0-9_~-]{1,8}(?:\.[A-Za-z0-9_~-]{1,8})?$/);
const urlText = fc.record({
  scheme: fc.constantFrom('http', 'https', 'ftp'),
  host: fc.oneof(domainName, fqdnName, fc.ipV4()),
  port: fc.option(fc.integer({ min: 1, max: 65535 }).map((port) => `:${port}`), { nil: '' }),
  path: fc.array(segment, { maxLength: 4 }).map((segments) => segments.map((s) => `/${s}`).join('')),
  query: fc.option(fc.stringMatching(/^\?[a-z]{1,5}=[A-Za-z0-9]{1,8}(?:&[a-z]{1,5}=[A-Za-z0-9]{1,8})?$/), { nil: '' }),
  fragment: fc.option(fc.stringMatching(/^#[A-Za-z0-9-]{1,8}$/), { nil: '' }),
}).map(({ scheme, host, port, path, query, fragment }) => `${scheme}://${host}${port}${path}${query}${fragment}`);
const mailText = fc.tuple(fc.array(fc.stringMatching(/^[A-Za-z0-9_%+-]{1,8}$/), { minLength: 1, maxLength: 3 }), fc.oneof(domainName, fqdnName))
  .map(([parts, host]) => `${parts.join('.')}@${host}`);
const hashOf = (length: number) => fc.tuple(fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`)), fc.boolean())
  .filter(([hex]) => /\d/.test(hex) && /[a-f]/.test(hex))
  .map(([hex, upper]) => (upper ? hex.toUpperCase() : hex));

const valued = fc.oneof(
  fc.ipV4().map((value) => ({ value, expected: ip(value) })),
  fc.ipV6().filter((value) => normalizeIp(value) !== '::').map((value) => ({ value, expected: ipv6(normalizeIp(value) as string) })),
  domainName.map((value) => ({ value, expected: domain(value) })),
  fqdnName.map((value) => ({ value, expected: fqdn(value) })),
  urlText.map((value) => ({ value, expected: url(value) })),
  mailText.map((value) => ({ value, expected: mail(value.toLowerCase()) })),
  hashOf(32).map((value) => ({ value, expected: md5(value.toLowerCase()) })),
  hashOf(40).map((value) => ({ value, expected: sha1(value.toLowerCase()) })),
  hashOf(64).map((value) => ({ value, expected: sha256(value.toLowerCase()) })),
);
const separator = fc.constantFrom(' ', '\n', ', ', '; ', ' and ', '\t');

const keyOf = (observable: Observable) => `${observable.type} ${observable.data}`;

function firstOfEach(observables: Observable[]): Observable[] {
  const seen = new Set<string>();
  return observables.filter((observable) => !seen.has(keyOf(observable)) && seen.add(keyOf(observable)));
}

// Text made of the pieces extraction reacts to, so that arbitrary input reaches its corners.
const iocish = fc.array(fc.oneof(
  fc.constantFrom('[.]', '(dot)', '[at]', 'hxxp', 'https://', '://', '@', '.', ':', '::', '/', '(', ')', '[', ']', ' ', ',', 'com', 'co.uk', 'zip', 'ffff', '1', '255', 'CVE-2024-', '0000'),
  fc.ipV4(), fc.ipV6(), domainName, urlText, mailText, hashOf(32), fc.string({ maxLength: 5 }),
), { maxLength: 40 }).map((pieces) => pieces.join(''));
const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), iocish);

describe('extraction properties', () => {
  it('finds every valid value again after it was defanged and refanged', () => {
    fc.assert(fc.property(valued, ({ value, expected }) => {
      expect(extractObservables(refang(`Seen ${defang(value)}, twice.`))).toEqual([expected]);
    }));
  });

  it('finds exactly the values of a text made of several, each once, in order', () => {
    fc.assert(fc.property(fc.array(fc.tuple(valued, separator), { maxLength: 8 }), (items) => {
      const text = items.map(([{ value }, sep]) => `${defang(value)}${sep}`).join('');
      expect(extractObservables(text)).toEqual(firstOfEach(items.map(([{ expected }]) => expected)));
    }));
  });

  it('never throws, and returns valid, distinct observables', () => {
    fc.assert(fc.property(anyText, (text) => {
      const observables = extractObservables(text);
      for (const observable of observables) expect(Observable.safeParse(observable).success).toBe(true);
      expect(new Set(observables.map(keyOf)).size).toBe(observables.length);
    }), { numRuns: 500 });
  });

  it('with a limit, returns the first observables of the full result', () => {
    fc.assert(fc.property(anyText, fc.nat({ max: 10 }), (text, limit) => {
      expect(extractObservables(text, { limit })).toEqual(extractObservables(text).slice(0, limit));
    }));
  });

  it('dropping private addresses only removes observables, and leaves no private address', () => {
    fc.assert(fc.property(anyText, (text) => {
      const all = extractObservables(text).map(keyOf);
      const kept = extractObservables(text, { dropPrivate: true });
      expect(kept.map(keyOf).every((key) => all.includes(key))).toBe(true);
      for (const { type, data } of kept) {
        if (type === 'ip' || type === 'ipv6') expect(isPrivateOrReserved(data)).toBe(false);
      }
    }));
  });

  it('refang undoes defang', () => {
    fc.assert(fc.property(fc.oneof(urlText, mailText, domainName, fqdnName, fc.ipV4(), fc.ipV6()), (value) => {
      expect(refang(defang(value))).toBe(value);
    }));
  });
});
