#!/usr/bin/python3
"""s3_block_public_access: a CloudBots-style responder (Dome9's `AUTO: s3_block_public_access`) that
turns on all four S3 Block Public Access settings of the bucket a compliance finding names.

The job folder, the finding in `parameters` and the AWS credentials are handled by docket_cloudbot
(engines/_base/cloudbot).
"""
import docket_cloudbot as cloudbot

BOT = 's3_block_public_access'


def bucket_of(entity):
    # Dome9 names a bucket by its name; some exports give its ARN (arn:aws:s3:::name) instead.
    bucket = str(entity.get('id') or entity.get('name') or '')
    if bucket.startswith('arn:'):
        bucket = bucket.split(':::', 1)[-1]
    if not bucket:
        raise ValueError('the finding names no bucket: entity.id is empty')
    return bucket


def remediate(request):
    entity, region, _ = cloudbot.finding_context(request)
    bucket = bucket_of(entity)
    cloudbot.aws_client('s3', region, BOT).put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            'BlockPublicAcls': True,
            'IgnorePublicAcls': True,
            'BlockPublicPolicy': True,
            'RestrictPublicBuckets': True,
        },
    )
    return 'blocked all public access to S3 bucket %s' % bucket, {'bucket': bucket, 'region': region}


if __name__ == '__main__':
    cloudbot.run(BOT, remediate)
