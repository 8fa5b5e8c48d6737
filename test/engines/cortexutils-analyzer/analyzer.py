#!/usr/bin/env python3
"""A Cortex analyzer written the way TheHive's analyzers are, on TheHive's own cortexutils package.
Docket must run it unchanged: job folder in, output.json out."""
from cortexutils.analyzer import Analyzer


class KeywordAnalyzer(Analyzer):
    def run(self):
        if self.data_type == 'file':
            with open(self.get_param('file', None, 'File is missing'), 'rb') as handle:
                text = handle.read().decode('utf-8', 'replace')
        else:
            text = self.get_data()
        hits = [word for word in self.get_param('config.keywords', ['evil']) if word in text.lower()]
        self.hits = hits
        note = '/tmp/keyword-note.txt'
        with open(note, 'w') as handle:
            handle.write('keywords found: %s\n' % ', '.join(hits))
        self.note = note
        self.report({'length': len(text), 'keywords': hits, 'seen': text[:200], 'tokens': text.split()[:50]})

    def summary(self, raw):
        level = 'malicious' if raw['keywords'] else 'safe'
        return {'taxonomies': [self.build_taxonomy(level, 'Keyword', 'Hits', len(raw['keywords']))]}

    def artifacts(self, raw):
        # The default extractor finds IOCs in the report; a file artifact travels through output/.
        found = super(KeywordAnalyzer, self).artifacts(raw)
        return found + [self.build_artifact('file', self.note, message='analyst note')]


if __name__ == '__main__':
    KeywordAnalyzer().run()
