import type { ObservableType } from './engine-manifest';
import type { Observable } from './investigation';

/**
 * Observables in free text (docs/investigations.md, "Phases"): what an analyst pastes into Slack or
 * a ticket, defanged or not, becomes typed observables the engines accept.
 *
 * How the text is read:
 * - `domain` is a registered domain, one label under a public suffix (`evil.com`, `evil.co.uk`);
 *   `fqdn` is a host name below one (`www.evil.com`, `mail.evil.co.uk`), as TheHive uses them.
 * - A URL is one observable. Its host, or a hash or mail address in its path, is not emitted on its
 *   own unless it also appears elsewhere in the text; likewise the domain of a mail address. An
 *   engine that wants the host of a URL takes it from the URL.
 * - A bare host name needs a TLD from the built-in list, so `report.pdf`, `index.html` or `1.2.3` are
 *   not domains. A URL's host only needs to be well formed: the scheme already marks it as one.
 *   URLs are http, https and ftp; without a scheme (`evil.com/gate.php`) only the host is read.
 *   Internationalized names are read in their punycode form (`xn--80ak6aa92e.com`) only.
 * - TLDs that are also common file extensions (`.zip`, `.py`, `.sh`, `.pl`, ...) make a bare name a
 *   file name unless it has a subdomain (`cdn.evil.zip`); in URLs and mail addresses they are hosts.
 * - Values are normalized so that duplicates collapse: host names, hashes and mail addresses to lower
 *   case, a URL's scheme and host to lower case (its path is case-sensitive and kept), IPv6 to its
 *   RFC 5952 form, CVE ids to upper case.
 * - A hash is a whole run of hex digits of exactly 32, 40 or 64 that has both digits and letters:
 *   runs of digits only are ids or numbers, runs of letters only are placeholders like `deadbeef`.
 * - IPv4 octets are written without leading zeros (`010.1.1.1` is ambiguous, octal to some parsers).
 */

export interface ExtractOptions {
  /**
   * Drop private, loopback, link-local, reserved, multicast and documentation IP addresses, and URLs
   * whose host is one: nothing outside the organization can say anything about them.
   */
  dropPrivate?: boolean;
  /** At most this many observables, the first ones in the text. */
  limit?: number;
}

/** As many observables as an investigation accepts (InvestigationInput.observables). */
export const DEFAULT_EXTRACT_LIMIT = 1000;

/** Observable.data is at most this long; a longer URL is dropped, since a truncated one is another URL. */
const MAX_DATA_LENGTH = 8192;

const REFANGS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\[:\/\/\]/g, '://'],
  [/\[:\]/g, ':'],
  // Spaces around a bracketed dot or at belong to the obfuscation: `john [at] evil [dot] com`. The
  // lookbehind starts a match only where a run of spaces starts, which keeps long runs linear.
  [/(?<![ \t])[ \t]*[[({][ \t]*(?:\.|dot)[ \t]*[\])}][ \t]*/gi, '.'],
  [/(?<![ \t])[ \t]*[[({][ \t]*(?:@|at)[ \t]*[\])}][ \t]*/gi, '@'],
];

/** Undoes the usual defanging: `hxxps[://]evil[.]com`, `john(at)evil(dot)com`, `10[.]0[.]0[.]1`. */
export function refang(text: string): string {
  let result = text.replace(/\bhxxps?\b/gi, (scheme) => scheme.toLowerCase().replace('hxxp', 'http'));
  for (const [pattern, replacement] of REFANGS) result = result.replace(pattern, replacement);
  return result;
}

/** Makes a value safe to paste where it could be clicked or resolved; `refang` restores it. */
export function defang(value: string): string {
  return value
    .replace(/\bhttp(s?)(?=:\/\/)/gi, (_, s: string) => `hxxp${s.toLowerCase()}`)
    .replace(/:\/\//g, '[://]')
    .replace(/\./g, '[.]')
    .replace(/@/g, '[@]');
}

/** The observables in `text`, refanged first, deduplicated and in order of first appearance. */
export function extractObservables(text: string, options: ExtractOptions = {}): Observable[] {
  const limit = options.limit ?? DEFAULT_EXTRACT_LIMIT;
  if (Number.isNaN(limit) || limit < 0) throw new RangeError(`extractObservables: limit must be 0 or more, got ${limit}`);
  const wanted = (ip: string) => !options.dropPrivate || !isPrivateOrReserved(ip);

  const scan = new Scan(refang(text));
  // Each pass blanks what it recognized, so that a later one never sees a part of it: a URL's host,
  // a mail address's domain, the IPv4 tail of an IPv6 address, the leading labels of a host name
  // such as `10.0.0.1-a.example.com` or `<md5>.exfil.example.com`.
  scan.pass(URL_PATTERN, (match) => readUrl(match[0], wanted));
  scan.pass(MAIL_PATTERN, (match) => readMail(match[1], match[2]));
  scan.pass(IPV6_PATTERN, (match) => readIpv6(match[0], wanted));
  scan.pass(HOST_PATTERN, (match) => readHostName(match[0]));
  scan.pass(IPV4_PATTERN, (match) => readIpv4(match[0], wanted));
  scan.pass(HASH_PATTERN, (match) => readHash(match[0]));
  scan.pass(CVE_PATTERN, (match) => readCve(match[0], match[1], match[2]));

  const seen = new Set<string>();
  const observables: Observable[] = [];
  for (const { type, data } of scan.found.sort((a, b) => a.index - b.index)) {
    const key = `${type} ${data}`;
    if (seen.has(key)) continue;
    seen.add(key);
    observables.push({ type, data });
  }
  return observables.slice(0, limit);
}

/** What a pass recognized: how much of the match it used, and the observable unless it was dropped. */
interface Recognized {
  length: number;
  observable?: { type: ObservableType; data: string };
}

class Scan {
  readonly found: Array<{ index: number; type: ObservableType; data: string }> = [];

  constructor(private text: string) {}

  pass(pattern: RegExp, read: (match: RegExpExecArray) => Recognized | undefined): void {
    const spans: Array<[number, number]> = [];
    for (const match of this.text.matchAll(pattern)) {
      const recognized = read(match);
      if (!recognized) continue;
      if (recognized.observable) this.found.push({ index: match.index, ...recognized.observable });
      spans.push([match.index, match.index + recognized.length]);
    }
    this.text = blank(this.text, spans);
  }
}

/** Replaces each span by spaces of the same length, so that indexes stay those of the text. */
function blank(text: string, spans: Array<[number, number]>): string {
  let result = '';
  let at = 0;
  for (const [start, end] of spans) {
    result += text.slice(at, start) + ' '.repeat(end - start);
    at = end;
  }
  return result + text.slice(at);
}

// Printable ASCII but space, `"`, `<`, `>` and backtick: what a URL written in prose is made of.
const URL_PATTERN = /\b(?:https?|ftp):\/\/[!#-;=?-_a-~]+/gi;
const MAIL_PATTERN = /(?<![\w.%+-])([a-z0-9._%+-]+)@([a-z0-9.-]+)/gi;
// A run of hex digits, colons and dots with a colon in it; parseIpv6 decides.
const IPV6_PATTERN = /(?<![\w:.])(?=[0-9a-f.]*:)[0-9a-f.:]+(?![\w:])/gi;
const HOST_PATTERN = /(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}(?![\w-]|\.[a-z0-9])/gi;
// Not a part of a longer dotted run such as an OID or a four-part version `1.2.3.4.5`.
const IPV4_PATTERN = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)/g;
const HASH_PATTERN = /(?<!\w)[0-9a-f]{32,64}(?!\w)/gi;
const CVE_PATTERN = /\bCVE[-\u2010-\u2015](\d{4})[-\u2010-\u2015](\d{4,7})(?!\w)/gi;

const TRAILING_PUNCTUATION = new Set(['.', ',', ';', ':', '!', '?', "'", '*']);
const OPENER_OF: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

/** Drops the sentence punctuation after a URL; a closing bracket stays when the URL opened it. */
function trimUrl(url: string): string {
  const counts = new Map<string, number>();
  for (const char of url) counts.set(char, countOf(counts, char) + 1);
  let end = url.length;
  while (end > 0) {
    const last = url[end - 1];
    const opener = OPENER_OF[last];
    const unbalanced = opener !== undefined && countOf(counts, last) > countOf(counts, opener);
    if (!TRAILING_PUNCTUATION.has(last) && !unbalanced) break;
    counts.set(last, countOf(counts, last) - 1);
    end -= 1;
  }
  return url.slice(0, end);
}

function countOf(counts: Map<string, number>, char: string): number {
  return counts.get(char) ?? 0;
}

function readUrl(candidate: string, wanted: (ip: string) => boolean): Recognized | undefined {
  const url = trimUrl(candidate);
  const parts = /^([a-z]+):\/\/([^/?#]*)(.*)$/i.exec(url);
  if (!parts) return undefined;
  const [, scheme, authority, rest] = parts;
  const at = authority.lastIndexOf('@');
  const userinfo = authority.slice(0, at + 1);
  const host = parseUrlHost(authority.slice(at + 1));
  if (!host) return undefined;
  const recognized = { length: url.length };
  if (host.ip !== undefined && !wanted(host.ip)) return recognized;
  const data = `${scheme.toLowerCase()}://${userinfo}${host.text}${host.port}${rest}`;
  if (data.length > MAX_DATA_LENGTH) return recognized;
  return { ...recognized, observable: { type: 'url', data } };
}

/** The host of a URL authority (without user info): an IP literal or a well-formed host name. */
function parseUrlHost(hostPort: string): { text: string; port: string; ip?: string } | undefined {
  let host: string;
  let port: string;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    const groups = close < 0 ? undefined : parseIpv6(hostPort.slice(1, close));
    if (!groups) return undefined;
    host = formatIpv6(groups);
    port = hostPort.slice(close + 1);
    if (!isValidPort(port)) return undefined;
    return { text: `[${host}]`, port, ip: host };
  }
  const colon = hostPort.indexOf(':');
  host = (colon < 0 ? hostPort : hostPort.slice(0, colon)).toLowerCase();
  port = colon < 0 ? '' : hostPort.slice(colon);
  if (!isValidPort(port)) return undefined;
  if (parseIpv4(host) !== undefined) return { text: host, port, ip: host };
  return isUrlHostName(host) ? { text: host, port } : undefined;
}

function isValidPort(port: string): boolean {
  return port === '' || /^:\d{1,5}$/.test(port);
}

/** A URL host may be a single label (`intranet`) and, as browsers allow, have underscores. */
function isUrlHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.split('.');
  // An all-digit last label makes the host an IPv4 address to a browser, and this one is not valid.
  if (/^\d+$/.test(labels[labels.length - 1])) return false;
  return labels.every((label) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label));
}

function readMail(local: string, domainPart: string): Recognized | undefined {
  // The domain pattern takes a sentence's final dot along: `write to john@evil.com.`
  const domain = domainPart.replace(/[.-]+$/, '').toLowerCase();
  if (local.length > 64 || local.startsWith('.') || local.endsWith('.') || local.includes('..')) return undefined;
  if (!isHostLabels(domain) || !hostKind(domain)) return undefined;
  const data = `${local.toLowerCase()}@${domain}`;
  return { length: local.length + 1 + domain.length, observable: { type: 'mail', data } };
}

function readIpv6(candidate: string, wanted: (ip: string) => boolean): Recognized | undefined {
  let text = candidate.replace(/\.+$/, '');
  // `at fe80::1: the gateway`: a single colon after the address is punctuation, `fe80::` is an address.
  if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  const groups = parseIpv6(text);
  // `::` alone is the unspecified address, and in prose more often a scope operator or a separator.
  if (!groups || groups.every((group) => group === 0)) return undefined;
  const data = formatIpv6(groups);
  if (!wanted(data)) return { length: text.length };
  return { length: text.length, observable: { type: 'ipv6', data } };
}

function readIpv4(candidate: string, wanted: (ip: string) => boolean): Recognized | undefined {
  if (parseIpv4(candidate) === undefined) return undefined;
  if (!wanted(candidate)) return { length: candidate.length };
  return { length: candidate.length, observable: { type: 'ip', data: candidate } };
}

const HASH_TYPES: Record<number, ObservableType> = { 32: 'md5', 40: 'sha1', 64: 'sha256' };

function readHash(candidate: string): Recognized | undefined {
  const type = HASH_TYPES[candidate.length];
  if (!type || !/\d/.test(candidate) || !/[a-f]/i.test(candidate)) return undefined;
  return { length: candidate.length, observable: { type, data: candidate.toLowerCase() } };
}

function readCve(candidate: string, year: string, sequence: string): Recognized | undefined {
  // CVE ids began in 1999.
  if (Number(year) < 1999) return undefined;
  return { length: candidate.length, observable: { type: 'cve', data: `CVE-${year}-${sequence}` } };
}

function readHostName(candidate: string): Recognized | undefined {
  const host = candidate.toLowerCase();
  const labels = host.split('.');
  if (host.length > 253) return undefined;
  if (FILE_EXTENSION_TLDS.has(labels[labels.length - 1]) && labels.length < 3) return undefined;
  const type = hostKind(host);
  if (!type) return undefined;
  return { length: candidate.length, observable: { type, data: host } };
}

function isHostLabels(host: string): boolean {
  return host.length <= 253 && host.split('.').every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
}

/**
 * `domain` for a registered domain, `fqdn` for a name below one, undefined for a name that does not
 * end in a known TLD or is itself a public suffix (`co.uk`).
 */
function hostKind(host: string): 'domain' | 'fqdn' | undefined {
  const labels = host.split('.');
  if (!TLDS.has(labels[labels.length - 1])) return undefined;
  const suffixLength = SECOND_LEVEL_SUFFIXES.has(labels.slice(-2).join('.')) ? 2 : 1;
  if (labels.length <= suffixLength) return undefined;
  return labels.length === suffixLength + 1 ? 'domain' : 'fqdn';
}

/** Whether an IPv4 or IPv6 address is one nobody outside the organization can tell anything about. */
export function isPrivateOrReserved(ip: string): boolean {
  const v4 = parseIpv4(ip);
  if (v4 !== undefined) return isSpecialIpv4(v4);
  const v6 = parseIpv6(ip);
  if (v6 !== undefined) return isSpecialIpv6(v6);
  return false;
}

/** The canonical text of an IP address (IPv6 per RFC 5952), or undefined when `text` is not one. */
export function normalizeIp(text: string): string | undefined {
  if (parseIpv4(text) !== undefined) return text;
  const groups = parseIpv6(text);
  return groups && formatIpv6(groups);
}

/** IPv4 special-purpose ranges (RFC 6890 and the IANA registry) that are not globally reachable. */
const SPECIAL_IPV4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // this network
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // deprecated 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
];

function isSpecialIpv4(address: number): boolean {
  return SPECIAL_IPV4.some(([base, prefix]) => {
    const size = 2 ** (32 - prefix);
    return Math.floor(address / size) === Math.floor((parseIpv4(base) as number) / size);
  });
}

/** Special ranges inside global unicast 2000::/3; everything outside it is special already. */
const SPECIAL_GLOBAL_IPV6: ReadonlyArray<readonly [string, number]> = [
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation (RFC 9637)
  ['2001:2::', 48], // benchmarking
  ['2001:10::', 28], // ORCHID
];

function isSpecialIpv6(groups: number[]): boolean {
  if (isIpv4Mapped(groups)) return isSpecialIpv4(groups[6] * 0x10000 + groups[7]);
  // Loopback, unspecified, unique local fc00::/7, link-local fe80::/10, multicast ff00::/8 and all
  // unallocated space lie outside 2000::/3, the only block IANA assigns global unicast from.
  if (groups[0] >> 13 !== 0b001) return true;
  return SPECIAL_GLOBAL_IPV6.some(([base, prefix]) => inIpv6Prefix(groups, parseIpv6(base) as number[], prefix));
}

function inIpv6Prefix(groups: number[], base: number[], prefix: number): boolean {
  for (let i = 0; i * 16 < prefix; i += 1) {
    const shift = 16 - Math.min(16, prefix - i * 16);
    if (groups[i] >> shift !== base[i] >> shift) return false;
  }
  return true;
}

function isIpv4Mapped(groups: number[]): boolean {
  return groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
}

/** Dotted-quad IPv4 as a number, or undefined; leading zeros are refused as ambiguous. */
function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** An IPv6 address (RFC 4291 text forms, `::` and a trailing dotted quad included) as 8 groups. */
function parseIpv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const compressed = halves.length === 2;
  const head = parseIpv6Groups(halves[0], !compressed);
  const tail = compressed ? parseIpv6Groups(halves[1], true) : [];
  if (!head || !tail) return undefined;
  if (!compressed) return head.length === 8 ? head : undefined;
  const zeros = 8 - head.length - tail.length;
  if (zeros < 1) return undefined;
  return [...head, ...new Array<number>(zeros).fill(0), ...tail];
}

function parseIpv6Groups(text: string, dottedQuadLast: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (dottedQuadLast && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      groups.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/** RFC 5952: lower-case hex without leading zeros, the longest run of two or more zero groups as `::`. */
function formatIpv6(groups: number[]): string {
  if (isIpv4Mapped(groups)) return `::ffff:${formatIpv4(groups[6] * 0x10000 + groups[7])}`;
  let runStart = -1;
  let runLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end += 1;
    if (end - i > runLength) {
      runStart = i;
      runLength = end - i;
    }
    i = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (runStart < 0) return hex.join(':');
  return `${hex.slice(0, runStart).join(':')}::${hex.slice(runStart + runLength).join(':')}`;
}

const words = (list: string) => new Set(list.trim().split(/\s+/));

/**
 * Generic TLDs common in mail and threat reports, and country-code TLDs. Not the whole root zone:
 * a bare name ending in an unknown TLD is not taken for a host, which is what keeps file names out.
 */
const TLDS = words(`
  com net org info biz name pro mobi asia tel travel jobs aero coop museum edu gov mil int
  app dev page cloud online site website space tech store shop xyz top club live life world today news
  blog email link click download stream win bid loan date racing review party trade faith science
  cricket accountant work vip icu fun buzz rest bar cam monster cyou sbs cfd quest lol host support
  services digital agency network systems group company center studio design media social one ltd inc
  llc solutions zone team tools best wiki zip mov run pub cab
  ac ad ae af ag ai al am ao ar as at au az ba bd be bf bg bh bi bj bn bo br bs bt bw by bz
  ca cc cd cf cg ch ci cl cm cn co cr cu cv cy cz de dj dk dm dz ec ee eg es et eu fi fj fm fr
  ga ge gg gh gi gl gm gq gr gt gy hk hn hr ht hu id ie il im in io iq ir is it je jm jo jp
  ke kg kh ki kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mk ml mm mn mo mr ms mt mu
  mv mw mx my mz na ne ng ni nl no np nr nu nz om pa pe pg ph pk pl pr ps pt pw py qa re ro rs ru rw
  sa sb sc sd se sg sh si sk sl sm sn so sr st su sv sy sz tc td tf tg th tj tk tl tm tn to tr tt tv
  tw tz ua ug uk us uy uz va vc ve vg vi vn vu ws ye za zm zw
`);

/** TLDs that are also file extensions seen in security text: `invoice.zip`, `exploit.py`, `run.sh`. */
const FILE_EXTENSION_TLDS = words('zip mov py sh md rs pl ps so cc app one run pub cab mobi tf mk mo am as');

/** Second-level public suffixes under which people register names, so `evil.co.uk` is a domain. */
const SECOND_LEVEL_SUFFIXES = words(`
  co.uk org.uk ac.uk gov.uk me.uk net.uk ltd.uk plc.uk nhs.uk police.uk
  com.au net.au org.au edu.au gov.au asn.au id.au co.nz net.nz org.nz govt.nz ac.nz
  co.jp ne.jp or.jp ac.jp go.jp co.kr or.kr ne.kr go.kr
  com.cn net.cn org.cn gov.cn edu.cn com.hk org.hk net.hk com.tw org.tw net.tw
  com.sg org.sg com.my org.my co.id or.id co.th in.th com.vn com.ph com.pk
  co.in net.in org.in gen.in firm.in ind.in gov.in ac.in
  com.br net.br org.br gov.br com.ar com.mx org.mx gob.mx com.co com.pe com.ve com.uy com.bo com.ec
  co.za org.za gov.za com.ng co.ke com.eg co.il org.il ac.il gov.il com.tr org.tr gov.tr
  com.ua org.ua gov.ua com.sa com.qa com.kw com.bd co.ve
`);
