#!/usr/bin/python3
"""strings-ioc: finds indicators (IPv4 addresses, domains, URLs, mail addresses, MD5/SHA-1/SHA-256
hashes) in the printable strings of a file, as GNU strings extracts them, defanged ones included.

Speaks TheHive Cortex's job-folder protocol; each indicator becomes a Cortex artifact whose
dataType is Docket's observable type, so an investigation can analyze it in turn.
"""
import json
import os
import re
import subprocess
import sys

MAX_ARTIFACTS = 500
MIN_STRING = 4
PUBLIC_SUFFIXES = '/usr/share/publicsuffix/public_suffix_list.dat'
# Top-level domains that, inside a binary, are nearly always a file extension (libc.so, setup.py).
EXTENSION_TLDS = {'so', 'sh', 'py', 'pl', 'rs', 'md', 'ps', 'cs', 'zip', 'mov'}

REFANG = [
    (re.compile(r'\bhxxp(s?)(?=\[?:)', re.I), r'http\1'),
    (re.compile(r'\bfxp(?=\[?:)', re.I), 'ftp'),
    (re.compile(r'\[:\]//|\[://\]'), '://'),
    (re.compile(r'\s?[\[({](?:\.|dot)[\])}]\s?', re.I), '.'),
    (re.compile(r'\s?[\[({](?:@|at)[\])}]\s?', re.I), '@'),
]

OCTET = r'(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)'
IPV4 = re.compile(r'(?<![\d.])(?:%s\.){3}%s(?![\d]|\.\d)' % (OCTET, OCTET))
URL = re.compile(r'\b(?:https?|ftp)://[^\s"\'<>`{}|\\^]+', re.I)
MAIL = re.compile(r'\b[A-Za-z0-9._%+-]{1,64}@((?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63})\b')
DOTTED = re.compile(r'(?<![\w.@-])(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z][A-Za-z0-9-]{1,62}(?![\w@-]|\.\w)')
HEX = re.compile(r'(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{32})(?![0-9A-Fa-f])')
HASH_TYPES = {32: 'md5', 40: 'sha1', 64: 'sha256'}
CAMEL = re.compile(r'[a-z][A-Z]|^[A-Z][a-z]')


def load_tlds():
    """The ICANN top-level domains from Debian's copy of the Public Suffix List."""
    tlds = set()
    icann = False
    with open(PUBLIC_SUFFIXES, encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if line.startswith('// ===BEGIN ICANN'):
                icann = True
            elif line.startswith('// ===END ICANN'):
                break
            elif icann and line and not line.startswith('//') and '.' not in line and line.isascii():
                tlds.add(line.lower().lstrip('*.!'))
    return tlds - EXTENSION_TLDS


def refang(text):
    for pattern, replacement in REFANG:
        text = pattern.sub(replacement, text)
    return text


def is_domain(token, tlds):
    labels = token.split('.')
    if labels[-1].lower() not in tlds:
        return False
    # Code identifiers (System.Net, Foo.Bar.com) look like domains; real host names are written in
    # one case, so a label in CamelCase or PascalCase disqualifies the token.
    if any(CAMEL.search(label) for label in labels):
        return False
    return all(not label.startswith('-') and not label.endswith('-') for label in labels)


def indicators(line, tlds):
    """Yields (dataType, data) for every indicator in one printable string."""
    text = refang(line)
    for match in URL.finditer(text):
        url = match.group(0).rstrip('.,;:!?)]\'"')
        if len(url) > len('http://x.y'):
            yield 'url', url
    for match in MAIL.finditer(text):
        if match.group(1).rsplit('.', 1)[-1].lower() in tlds:
            yield 'mail', match.group(0).lower()
    for match in IPV4.finditer(text):
        yield 'ip', match.group(0)
    for match in DOTTED.finditer(text):
        token = match.group(0)
        if is_domain(token, tlds):
            yield 'domain', token.lower()
    for match in HEX.finditer(text):
        value = match.group(0)
        # A digest nearly always has both digits and letters; runs of one kind are counters or padding.
        if re.search(r'\d', value) and re.search(r'[A-Fa-f]', value):
            yield HASH_TYPES[len(value)], value.lower()


def printable_strings(path):
    """Yields the file's strings: 8-bit ones, then UTF-16LE ones (how Windows binaries keep text)."""
    for encoding in ('S', 'l'):
        process = subprocess.Popen(['strings', '-a', '-n', str(MIN_STRING), '-e', encoding, path],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for raw in process.stdout:
                yield raw.decode('utf-8', errors='replace').rstrip('\n')
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
            error = process.stderr.read().decode('utf-8', errors='replace').strip()
            process.stderr.close()
            code = process.wait()
            if code > 0:
                raise RuntimeError('strings failed (exit %d): %s' % (code, error[-500:]))


def analyze(request, job):
    if request.get('dataType') != 'file':
        raise ValueError('strings-ioc reads files, not %s observables' % request.get('dataType'))
    path = os.path.join(job, 'input', request['file'])
    tlds = load_tlds()
    seen = set()
    artifacts = []
    counts = {}
    truncated = False
    strings_read = 0
    for line in printable_strings(path):
        strings_read += 1
        for data_type, data in indicators(line, tlds):
            if (data_type, data) in seen:
                continue
            if len(artifacts) >= MAX_ARTIFACTS:
                truncated = True
                break
            seen.add((data_type, data))
            counts[data_type] = counts.get(data_type, 0) + 1
            artifacts.append({'dataType': data_type, 'data': data, 'message': 'found in the strings of %s' % (request.get('filename') or request['file'])})
        if truncated:
            break
    taxonomies = [{'level': 'info', 'namespace': 'StringsIOC', 'predicate': 'IOCs',
                   'value': '%d%s' % (len(artifacts), '+' if truncated else '')}]
    return {
        'success': True,
        'full': {
            'filename': request.get('filename') or request['file'],
            'strings': strings_read,
            'counts': counts,
            'truncated': truncated,
            'limit': MAX_ARTIFACTS,
            'iocs': [{'type': a['dataType'], 'data': a['data']} for a in artifacts],
        },
        'summary': {'taxonomies': taxonomies},
        'artifacts': artifacts,
        'operations': [],
    }


def main(job):
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            report = analyze(json.load(handle), job)
    except Exception as error:  # the protocol reports failures in output.json, not by exit code
        report = {'success': False, 'errorMessage': 'strings-ioc: %s' % error}
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/job')
