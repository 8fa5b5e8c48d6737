#!/usr/bin/python3
"""fileinfo: file type (libmagic), size, md5, sha1, sha256, ssdeep and Shannon entropy of one file.

Speaks TheHive Cortex's job-folder protocol (called with the job folder, /job) and IBM Menagerie's
file protocol (called with --file INPUT --result RESULT).
"""
import hashlib
import json
import math
import os
import subprocess
import sys

CHUNK = 1 << 20


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def describe(path, filename):
    digests = {name: hashlib.new(name) for name in ('md5', 'sha1', 'sha256')}
    counts = [0] * 256
    size = 0
    with open(path, 'rb') as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            for digest in digests.values():
                digest.update(chunk)
            for byte in chunk:
                counts[byte] += 1
    entropy = 0.0
    for count in counts:
        if count:
            p = count / size
            entropy -= p * math.log2(p)
    fuzzy = run(['ssdeep', '-bs', path]).splitlines()
    return {
        'filename': filename,
        'size': size,
        'mimetype': run(['file', '-b', '--mime-type', path]),
        'magic': run(['file', '-b', path]),
        'md5': digests['md5'].hexdigest(),
        'sha1': digests['sha1'].hexdigest(),
        'sha256': digests['sha256'].hexdigest(),
        'ssdeep': fuzzy[1].split(',')[0] if len(fuzzy) > 1 else '',
        'entropy': round(entropy, 4),
    }


def cortex(job):
    output_dir = os.path.join(job, 'output')
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            request = json.load(handle)
        if request.get('dataType') != 'file':
            raise ValueError('fileinfo analyzes files, not %s observables' % request.get('dataType'))
        path = os.path.join(job, 'input', request['file'])
        info = describe(path, request.get('filename') or request['file'])
        level = 'suspicious' if info['entropy'] > 7.2 else 'info'
        report = {
            'success': True,
            'full': info,
            'summary': {'taxonomies': [
                {'level': 'info', 'namespace': 'FileInfo', 'predicate': 'MimeType', 'value': info['mimetype']},
                {'level': level, 'namespace': 'FileInfo', 'predicate': 'Entropy', 'value': info['entropy']},
            ]},
            'artifacts': [],
            'operations': [],
        }
    except Exception as error:  # the protocol reports failures in output.json
        report = {'success': False, 'errorMessage': 'fileinfo: %s' % error}
    with open(os.path.join(output_dir, 'output.json'), 'w') as handle:
        json.dump(report, handle)


def menagerie(args):
    source = args[args.index('--file') + 1]
    result = args[args.index('--result') + 1]
    info = describe(source, os.path.basename(source))
    with open(result, 'w') as handle:
        json.dump(info, handle)


if __name__ == '__main__':
    if '--file' in sys.argv:
        menagerie(sys.argv[1:])
    else:
        cortex(sys.argv[1] if len(sys.argv) > 1 else '/job')
