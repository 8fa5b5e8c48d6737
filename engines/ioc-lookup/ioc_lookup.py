#!/usr/bin/python3
"""ioc-lookup: looks observables up in local threat-intelligence feeds (one indicator a line,
`indicator,level,source`), the way a MISP or abuse.ch export is used offline. Cortex protocol.

Feeds come from /feeds (bundled) and from the folder named by config.feeds_dir (a mounted volume).
URLs also match on their host, so a listed domain flags every URL on it.
"""
import json
import os
import sys
from urllib.parse import urlsplit

LEVELS = ('info', 'safe', 'suspicious', 'malicious')


def load_feeds(folders):
    indicators = {}
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding='utf-8', errors='replace') as handle:
                for line in handle:
                    line = line.strip()
                    if not line or line.startswith('#'):
                        continue
                    parts = [part.strip() for part in line.split(',')]
                    level = parts[1] if len(parts) > 1 and parts[1] in LEVELS else 'malicious'
                    source = parts[2] if len(parts) > 2 else name
                    indicators[parts[0].lower()] = (level, source)
    return indicators


def candidates(data_type, data):
    value = data.strip().lower()
    found = [value]
    if data_type == 'url':
        host = urlsplit(value).hostname or ''
        if host:
            found.append(host)
            labels = host.split('.')
            found.extend('.'.join(labels[i:]) for i in range(1, len(labels) - 1))
    elif data_type in ('fqdn', 'domain'):
        labels = value.split('.')
        found.extend('.'.join(labels[i:]) for i in range(1, len(labels) - 1))
    return found


def main(job):
    with open(os.path.join(job, 'input', 'input.json')) as handle:
        request = json.load(handle)
    config = request.get('config') or {}
    data_type = request.get('dataType')
    data = request.get('data') or ''
    indicators = load_feeds(['/feeds', config.get('feeds_dir')])
    hits = []
    for candidate in candidates(data_type, data):
        if candidate in indicators:
            level, source = indicators[candidate]
            hits.append({'indicator': candidate, 'level': level, 'source': source})
    if hits:
        worst = max(hits, key=lambda hit: LEVELS.index(hit['level']))
        taxonomy = {'level': worst['level'], 'namespace': 'IOC', 'predicate': 'Feeds', 'value': '%d hit(s)' % len(hits)}
    else:
        taxonomy = {'level': 'safe', 'namespace': 'IOC', 'predicate': 'Feeds', 'value': 'not listed'}
    report = {
        'success': True,
        'full': {'observable': data, 'dataType': data_type, 'hits': hits, 'indicators': len(indicators)},
        'summary': {'taxonomies': [taxonomy]},
        'artifacts': [],
        'operations': [],
    }
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/job')
