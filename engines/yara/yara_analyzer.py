#!/usr/bin/python3
"""yara: matches one file against the bundled, precompiled YARA rules with the yara command line tool.

Speaks TheHive Cortex's job-folder protocol: called with the job folder (/job), reads
input/input.json and the attachment beside it, writes output/output.json.
"""
import json
import os
import subprocess
import sys

RULES = '/engine/rules.yarc'
LEVELS = ('info', 'safe', 'suspicious', 'malicious')
DEFAULT_LEVEL = 'suspicious'
SCAN_TIMEOUT_S = 90
MAX_STRINGS_PER_RULE = 20
MAX_STRING_CHARS = 200


def parse_meta(text, start):
    """Reads `[key="value",key=1,...]` as yara -m prints it (\\", \\' and \\\\ escaped) from text[start]."""
    meta = {}
    i = start + 1
    while i < len(text) and text[i] != ']':
        equals = text.index('=', i)
        key = text[i:equals]
        i = equals + 1
        if text[i] == '"':
            value = []
            i += 1
            while text[i] != '"':
                if text[i] == '\\':
                    following = text[i + 1]
                    if following == 'x':
                        value.append(chr(int(text[i + 2:i + 4], 16)))
                        i += 4
                        continue
                    value.append(following)
                    i += 2
                    continue
                value.append(text[i])
                i += 1
            meta[key] = ''.join(value)
            i += 1
        else:
            end = i
            while end < len(text) and text[end] not in ',]':
                end += 1
            raw = text[i:end]
            meta[key] = True if raw == 'true' else False if raw == 'false' else int(raw) if raw.lstrip('-').isdigit() else raw
            i = end
        if i < len(text) and text[i] == ',':
            i += 1
    return meta, i + 1


def scan(path):
    """Runs yara and returns one entry per matched rule, with its metadata and matched strings."""
    completed = subprocess.run(
        ['yara', '--compiled-rules', '--print-meta', '--print-strings', '--no-warnings',
         '--timeout=%d' % SCAN_TIMEOUT_S, RULES, path],
        capture_output=True, text=True, errors='replace')
    if completed.returncode != 0:
        raise RuntimeError('yara failed (exit %d): %s' % (completed.returncode, completed.stderr.strip()[-500:]))
    matches = []
    suffix = ' ' + path
    for line in completed.stdout.splitlines():
        if line.startswith('0x') and matches:
            offset, _, rest = line.partition(':')
            identifier, _, data = rest.partition(': ')
            current = matches[-1]
            current['string_count'] += 1
            if len(current['strings']) < MAX_STRINGS_PER_RULE:
                current['strings'].append({'offset': int(offset, 16), 'identifier': identifier, 'data': data[:MAX_STRING_CHARS]})
            continue
        if not line.endswith(suffix):
            continue
        head = line[:-len(suffix)]
        name, _, rest = head.partition(' ')
        meta = {}
        if rest.startswith('['):
            meta, _ = parse_meta(rest, 0)
        matches.append({'rule': name, 'meta': meta, 'strings': [], 'string_count': 0})
    return matches


def level_of(match):
    level = str(match['meta'].get('level', DEFAULT_LEVEL)).lower()
    return level if level in LEVELS else DEFAULT_LEVEL


def analyze(request, job):
    if request.get('dataType') != 'file':
        raise ValueError('yara scans files, not %s observables' % request.get('dataType'))
    path = os.path.join(job, 'input', request['file'])
    matches = scan(path)
    taxonomies = [
        {'level': level_of(match), 'namespace': 'Yara', 'predicate': match['rule'],
         'value': str(match['meta'].get('description', 'match'))}
        for match in matches
    ]
    if not taxonomies:
        taxonomies = [{'level': 'safe', 'namespace': 'Yara', 'predicate': 'Match', 'value': 'no rule matched'}]
    return {
        'success': True,
        'full': {
            'filename': request.get('filename') or request['file'],
            'size': os.path.getsize(path),
            'matches': matches,
        },
        'summary': {'taxonomies': taxonomies},
        'artifacts': [],
        'operations': [],
    }


def main(job):
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            report = analyze(json.load(handle), job)
    except Exception as error:  # the protocol reports failures in output.json, not by exit code
        report = {'success': False, 'errorMessage': 'yara: %s' % error}
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/job')
