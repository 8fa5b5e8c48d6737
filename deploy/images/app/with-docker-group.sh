#!/bin/sh
# The engines role needs the Docker socket's group, whose id differs from host to host: started as
# root, this reads it from the mounted socket and runs the command as the docket user with that group
# added, no capabilities and no way to regain them. With a remote DOCKER_HOST (tcp://) and no socket,
# it runs the command as docket with no extra group.
set -eu
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}
groups=docket
if [ -S "$socket" ]; then
  groups="docket,$(stat -c %g "$socket")"
elif [ "${DOCKER_HOST:-}" = "" ] || [ "${DOCKER_HOST#unix://}" != "$DOCKER_HOST" ]; then
  echo "docket engines: no Docker socket at $socket: mount it (see docker-compose.yml) or set DOCKER_HOST to a remote Docker engine" >&2
  exit 1
fi
# HOME too: Temporal's connection profile (~/.config/temporalio) is looked up there.
export HOME=/docket
exec setpriv --reuid=docket --regid=docket --groups="$groups" --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
