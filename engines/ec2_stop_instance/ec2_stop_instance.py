#!/usr/bin/python3
"""ec2_stop_instance: a CloudBots-style responder (Dome9's `AUTO: ec2_stop_instance`) that stops the
EC2 instance a compliance finding names. Stopping keeps the instance and its disks for investigation,
unlike terminating it; an instance already stopped is reported as such.

The job folder, the finding in `parameters` and the AWS credentials are handled by docket_cloudbot
(engines/_base/cloudbot).
"""
import re

import docket_cloudbot as cloudbot

BOT = 'ec2_stop_instance'
INSTANCE_ID = re.compile(r'^i-[0-9a-f]{8,17}$')


def remediate(request):
    entity, region, _ = cloudbot.finding_context(request)
    instance = str(entity.get('id') or '')
    if not INSTANCE_ID.match(instance):
        raise ValueError('entity.id %r is not an EC2 instance id such as i-0123456789abcdef0' % instance)
    answer = cloudbot.aws_client('ec2', region, BOT).stop_instances(InstanceIds=[instance])
    change = answer['StoppingInstances'][0]
    before = change['PreviousState']['Name']
    after = change['CurrentState']['Name']
    if before in ('stopped', 'stopping'):
        message = 'EC2 instance %s was already %s' % (instance, before)
    else:
        message = 'stopping EC2 instance %s (it was %s)' % (instance, before)
    return message, {'instance': instance, 'region': region, 'previousState': before, 'currentState': after}


if __name__ == '__main__':
    cloudbot.run(BOT, remediate)
