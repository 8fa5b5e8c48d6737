#!/usr/bin/env python3
"""A Cortex responder written the way TheHive's responders are, on TheHive's own cortexutils package:
it receives TheHive's object as its data and answers operations for TheHive to apply."""
from cortexutils.responder import Responder


class TagCase(Responder):
    def run(self):
        if self.data_type != 'thehive:case_artifact':
            self.error('this responder acts on case observables, not %s' % self.data_type)
        observable = self.get_data()
        self.observable = observable
        tag = self.get_param('config.tag', 'docket:responded')
        self.tag = tag
        self.report({'message': 'tagged %s %s' % (observable.get('dataType'), observable.get('data')), 'seen': observable})

    def operations(self, raw):
        return [
            self.build_operation('AddTagToArtifact', tag=self.tag),
            self.build_operation('AddTagToCase', tag='docket'),
        ]


if __name__ == '__main__':
    TagCase().run()
