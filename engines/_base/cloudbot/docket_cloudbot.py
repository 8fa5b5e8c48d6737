"""What every CloudBots-style responder shares: the Cortex job folder, the finding Docket passes in
`parameters` (`entity`, `region`, `params`, `rule`, `account_id`), and AWS clients built from the
credentials Docket sets for the run (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
DOCKET_ROLE_ARN to assume a role; AWS_ENDPOINT_URL to use another endpoint, an emulator in tests).

A bot is one function `remediate(request) -> (message, details)` handed to `run(bot, remediate)`.
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# Bounded, so an unreachable endpoint fails the job well within the engine's timeout.
CLIENT_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={'max_attempts': 3, 'mode': 'standard'})


def env(name):
    """A variable Docket set for this run, or None: an unset `${NAME}` reference arrives empty."""
    return os.environ.get(name, '') or None


def aws_client(service, region, bot):
    """A client in the finding's region, with the account's credentials, assuming its role if one is set.
    Debian's boto3 (1.26) predates AWS_ENDPOINT_URL, so the endpoint is passed explicitly."""
    endpoint = env('AWS_ENDPOINT_URL')
    credentials = {
        'aws_access_key_id': env('AWS_ACCESS_KEY_ID'),
        'aws_secret_access_key': env('AWS_SECRET_ACCESS_KEY'),
        'aws_session_token': env('AWS_SESSION_TOKEN'),
    }
    role = env('DOCKET_ROLE_ARN')
    if role:
        sts = boto3.client('sts', region_name=region, endpoint_url=endpoint, config=CLIENT_CONFIG, **credentials)
        assumed = sts.assume_role(RoleArn=role, RoleSessionName='docket-' + bot)['Credentials']
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


def run(bot, remediate):
    """Runs one bot on the job folder given as argument, reporting in output.json whatever happens."""
    job = sys.argv[1] if len(sys.argv) > 1 else '/job'
    try:
        with open(os.path.join(job, 'input', 'input.json')) as handle:
            message, details = remediate(json.load(handle))
        report = {
            'success': True,
            'full': dict(details, message=message, bot=bot),
            # The message again as a taxonomy: Docket's workflows read taxonomies, never the output file.
            'summary': {'taxonomies': [{'level': 'info', 'namespace': 'CloudBots', 'predicate': bot, 'value': message}]},
            'operations': [],
        }
    except ClientError as error:
        report = {'success': False, 'errorMessage': '%s: AWS refused: %s' % (bot, error)}
    except Exception as error:  # the protocol reports failures in output.json, not by exit code
        report = {'success': False, 'errorMessage': '%s: %s' % (bot, error)}
    with open(os.path.join(job, 'output', 'output.json'), 'w') as handle:
        json.dump(report, handle)
