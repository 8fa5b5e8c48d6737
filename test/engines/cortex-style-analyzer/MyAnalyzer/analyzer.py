#!/usr/bin/env python3
"""Reports one artifact of every Cortex data type, a file artifact among them, and what Cortex's
config keys it was given; it reads a module beside it by a relative path, as stock analyzers do."""
import json
import os

from cortexutils.analyzer import Analyzer

HERE = os.path.join('MyAnalyzer', 'reference.json')


class EveryTypeAnalyzer(Analyzer):
    def run(self):
        with open(HERE) as handle:
            self.reference = json.load(handle)
        if self.data_type == 'file':
            with open(self.get_param('file', None, 'File is missing'), 'rb') as handle:
                seen = handle.read(200).decode('utf-8', 'replace')
        else:
            seen = self.get_data()
        self.attachment = '/tmp/dropped-payload.bin'
        with open(self.attachment, 'wb') as handle:
            handle.write(b'MZ dropped by the sample\n')
        config = self.get_param('config', {})
        self.report({
            'seen': seen,
            'cwd': os.getcwd(),
            'uid': os.getuid(),
            'tlp': self.tlp,
            'pap': self.pap,
            'config': {key: config.get(key) for key in ('check_tlp', 'max_tlp', 'check_pap', 'max_pap')},
        })

    def summary(self, raw):
        return {'taxonomies': [self.build_taxonomy('suspicious', 'EveryType', 'Artifacts', len(self.reference) + 1)]}

    def artifacts(self, raw):
        found = [self.build_artifact(kind, value, tags=['every-type']) for kind, value in sorted(self.reference.items())]
        return found + [self.build_artifact('file', self.attachment, message='dropped file')]


if __name__ == '__main__':
    EveryTypeAnalyzer().run()
