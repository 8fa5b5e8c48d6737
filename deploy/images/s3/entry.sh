#!/bin/sh
# Serves /data through S3 with the credentials given; the posix backend treats each folder of /data
# as a bucket, so creating the folder creates DOCKET_S3_BUCKET (idempotent across restarts).
set -eu
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY, the access key id Docket signs with}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY, the secret Docket signs with}"
: "${DOCKET_S3_BUCKET:?set DOCKET_S3_BUCKET, the bucket to create}"
mkdir -p "/data/$DOCKET_S3_BUCKET"
# versitygw reads its credentials from ROOT_ACCESS_KEY / ROOT_SECRET_KEY, which keeps them out of the process list.
export ROOT_ACCESS_KEY="$S3_ACCESS_KEY" ROOT_SECRET_KEY="$S3_SECRET_KEY"
exec versitygw --port 0.0.0.0:7070 --quiet posix /data
