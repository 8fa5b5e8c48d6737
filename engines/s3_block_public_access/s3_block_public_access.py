#!/usr/bin/python3
"""s3_block_public_access: a CloudBots-style responder (Dome9's `AUTO: s3_block_public_access`) that
turns on all four S3 Block Public Access settings of the bucket a compliance finding names.

It speaks TheHive Cortex's job-folder protocol. `parameters` in /job/input/input.json carry the
finding as Docket passes it: `entity` (its `id` is the bucket), `region`, `params` (none used here),
`rule`, `account_id`. The account's credentials come from the environment Docket sets for the run
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; DOCKET_ROLE_ARN to assume a role), and
AWS_ENDPOINT_URL, when set, replaces AWS's endpoints (an emulator in tests).
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BOT = 's3_block_public_access'
# Bounded, so an unreachable endpoint fails the job well within the engine's timeout.
CLIENT_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={'max_attempts': 3, 'mode': 'standard'})


def env(name):
    """A variable Docket set for this run, or None: an unset `${NAME}` reference arrives empty."""
    return os.environ.get(name, '') or None


def aws_client(service, region):
    """A client in the finding's region, with the account's credentials, assuming its role if one is set."""
    endpoint = env('AWS_ENDPOINT_URL')
    credentials = {
        'aws_access_key_id': env('AWS_ACCESS_KEY_ID'),
        'aws_secret_access_key': env('AWS_SECRET_ACCESS_KEY'),
        'aws_session_token': env('AWS_SESSION_TOKEN'),
    }
    role = env('DOCKET_ROLE_ARN')
    if role:
        sts = boto3.client('sts', region_name=region, endpoint_url=endpoint, config=CLIENT_CONFIG, **credentials)
        assumed = sts.assume_role(RoleArn=role, RoleSessionName='docket-' + BOT)['Credentials']
        credentials = {
            'aws_access_key_id': assumed['AccessKeyId'],
            'aws_secret_access_key': assumed['SecretAccessKey'],
            'aws_session_token': assumed['SessionToken'],
        }
    return boto3.client(service, region_name=region, endpoint_url=endpoint, config=CLIENT_CONFIG, **credentials)


def finding_context(request):
    """The entity, region and params Docket passes in `parameters`, checked before anything is called."""
    parameters = request.get('parameters') or {}
    entity = parameters.get('entity') or {}
    region = parameters.get('region')
    if not region:
        raise ValueError('parameters.region is missing: Docket passes the region the finding is in')
    return entity, region, [str(param) for param in parameters.get('params') or []]



def bucket_of(entity):
    # Dome9 names a bucket by its name; some exports give its ARN (arn:aws:s3:::name) instead.
    bucket = str(entity.get('id') or entity.get('name') or '')
    if bucket.startswith('arn:'):
        bucket = bucket.split(':::', 1)[-1]
    if not bucket:
        raise ValueError('the finding names no bucket: entity.id is empty')
    return bucket


def remediate(request):
    entity, region, _ = finding_context(request)
    bucket = bucket_of(entity)
    aws_client('s3', region).put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            'BlockPublicAcls': True,
            'IgnorePublicAcls': True,
            'BlockPublicPolicy': True,
            'RestrictPublicBuckets': True,
        },
    )
    return 'blocked all public access to S3 bucket %s' % bucket, {'bucket': bucket, 'region': region}


def main(job):
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            message, details = remediate(json.load(handle))
        report = {
            'success': True,
            'full': dict(details, message=message, bot=BOT),
            # The message again as a taxonomy: Docket's workflows read taxonomies, never the output file.
            'summary': {'taxonomies': [{'level': 'info', 'namespace': 'CloudBots', 'predicate': BOT, 'value': message}]},
            'operations': [],
        }
    except ClientError as error:
        report = {'success': False, 'errorMessage': '%s: AWS refused: %s' % (BOT, error)}
    except Exception as error:  # the protocol reports failures in output.json, not by exit code
        report = {'success': False, 'errorMessage': '%s: %s' % (BOT, error)}
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else '/job')
