#!/usr/bin/python3
"""tag_ec2_resource: a CloudBots-style responder (Dome9's `AUTO: tag_ec2_resource <key> <value>`) that
tags the EC2 resource a compliance finding names (an instance, volume, security group...). The first
param is the key; the rest, joined by spaces, is the value (empty when there is none).

The job folder, the finding in `parameters` and the AWS credentials are handled by docket_cloudbot
(engines/_base/cloudbot).
"""
import docket_cloudbot as cloudbot

BOT = 'tag_ec2_resource'


# EC2's own limits on tag keys and values.
MAX_KEY = 128
MAX_VALUE = 256


def remediate(request):
    entity, region, params = cloudbot.finding_context(request)
    resource = str(entity.get('id') or '')
    if not resource:
        raise ValueError('the finding names no resource: entity.id is empty')
    if not params:
        raise ValueError('no tag given: write the rule tag as AUTO: tag_ec2_resource <key> <value>')
    key, value = params[0], ' '.join(params[1:])
    if len(key) > MAX_KEY or len(value) > MAX_VALUE or key.lower().startswith('aws:'):
        raise ValueError('tag %r=%r is not allowed by EC2: keys up to %d characters not starting with aws:, values up to %d'
                         % (key, value, MAX_KEY, MAX_VALUE))
    cloudbot.aws_client('ec2', region, BOT).create_tags(Resources=[resource], Tags=[{'Key': key, 'Value': value}])
    return 'tagged EC2 resource %s with %s=%s' % (resource, key, value), {'resource': resource, 'region': region, 'key': key, 'value': value}


if __name__ == '__main__':
    cloudbot.run(BOT, remediate)
