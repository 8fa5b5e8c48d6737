#!/bin/sh
# Brings the role, databases and schemas up to date (idempotent), then runs the server and gives Docket
# its namespace (retention, search attributes). The server's own log is /var/lib/temporal/temporal-server.log.
set -eu
cd /docket
node --import tsx scripts/temporal.ts setup
exec node --import tsx scripts/temporal.ts start "$@"
