#!/usr/bin/python3
"""blocklist: a Cortex responder that adds a URL, domain or IP address to the blocklist a web proxy
reads (one entry per line) on the shared volume mounted at /blocklist.

Idempotent twice over: an entry already listed is not added again, and a run whose
`parameters.idempotency_key` was seen before does nothing and says so, so a re-delivered request
(a re-sent compliance event, a retried activity) never acts twice.
"""
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import sys
import urllib.parse

DIRECTORY = '/blocklist'
LIST = os.path.join(DIRECTORY, 'blocklist.txt')
KEYS = os.path.join(DIRECTORY, '.idempotency-keys')
LOCK = os.path.join(DIRECTORY, '.lock')
TYPES = ('url', 'domain', 'fqdn', 'ip')
HOSTNAME = re.compile(r'^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$')


def normalize(data_type, data):
    """The entry as the proxy should read it; refuses anything that could smuggle in a second line."""
    value = str(data).strip()
    if not value or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError('refusing %r: an entry must be one word without spaces or control characters' % value)
    if data_type == 'ip':
        return str(ipaddress.ip_address(value))
    if data_type in ('domain', 'fqdn'):
        host = value.rstrip('.').lower()
        if not HOSTNAME.match(host):
            raise ValueError('%r is not a domain name' % value)
        return host
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme.lower() not in ('http', 'https', 'ftp') or not parsed.hostname:
        raise ValueError('%r is not an http, https or ftp URL' % value)
    # Scheme and host are case-insensitive; lower-casing them keeps one URL from being listed twice.
    userinfo, at, hostport = parsed.netloc.rpartition('@')
    netloc = userinfo + at + hostport.lower()
    return urllib.parse.urlunsplit((parsed.scheme.lower(), netloc, parsed.path, parsed.query, parsed.fragment))


def read_lines(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return {line.rstrip('\n') for line in handle}
    except FileNotFoundError:
        return set()


def append_line(path, line):
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write of a whole line, so a proxy reading concurrently never sees half an entry.
        os.write(descriptor, (line + '\n').encode('utf-8'))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def respond(request):
    data_type = request.get('dataType')
    if data_type not in TYPES:
        raise ValueError('blocklist acts on %s, not %s observables' % (', '.join(TYPES), data_type))
    entry = normalize(data_type, request.get('data', ''))
    key = (request.get('parameters') or {}).get('idempotency_key')
    # Keys are stored hashed: whatever a caller sends, it stays one line in the keys file.
    key_hash = hashlib.sha256(str(key).encode('utf-8')).hexdigest() if key not in (None, '') else None
    if not os.access(DIRECTORY, os.W_OK):
        raise PermissionError('%s is not writable by uid %d: mount a volume there whose root allows it' % (DIRECTORY, os.getuid()))
    with open(LOCK, 'a') as lock:
        # Jobs on several workers may share the volume; the check and the append happen as one step.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if key_hash and key_hash in read_lines(KEYS):
            return {'message': 'already done: idempotency key %s was used before; nothing changed' % key,
                    'entry': entry, 'added': False, 'alreadyDone': True}
        listed = entry in read_lines(LIST)
        if not listed:
            append_line(LIST, entry)
        if key_hash:
            append_line(KEYS, key_hash)
    message = ('%s was already on the blocklist' if listed else 'added %s to the blocklist') % entry
    return {'message': message, 'entry': entry, 'added': not listed, 'alreadyDone': False}


def main(job):
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            full = respond(json.load(handle))
        report = {'success': True, 'full': full, 'operations': []}
    except Exception as error:  # the protocol reports failures in output.json, not by exit code
        report = {'success': False, 'errorMessage': 'blocklist: %s' % error}
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/job')
