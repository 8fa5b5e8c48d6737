#!/usr/bin/env bash
# The first start on a machine made as fresh as one can be made in place: `npm install && npm start`
# from a new clone, with Docker's packages (docker.io, containerd, runc) and debootstrap removed,
# Docker's data moved aside, and empty npm and Go caches (new folders for npm_config_cache,
# GOMODCACHE and XDG_CACHE_HOME). Prints each line of the start with its seconds, then when the
# gateway first answered /healthz and when Docket was running; stops Docket and puts Docker's data
# back (Docker stays installed: the start reinstalled it).
#
# It removes packages and stops the Docker daemon: run it as root, on an idle machine that runs
# nothing else of Docker's, and only with --remove-docker to say so. The default ports (8100, 7233,
# 8233, 8101, 8102) must be free. Not part of `npm run bench`.
#
#   bash bench/first-start.sh --remove-docker
set -uo pipefail
[ "${1:-}" = --remove-docker ] || { echo "usage: bash bench/first-start.sh --remove-docker (see its header: it removes Docker's packages)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "first-start: run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
log=$work/start.log

stop_docker() { pkill -x dockerd; sleep 3; pkill -x containerd; sleep 1; }
stop_docker
mv /var/lib/docker "$work/docker.kept"
[ -d /var/lib/containerd ] && mv /var/lib/containerd "$work/containerd.kept"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq docker.io containerd runc debootstrap >/dev/null 2>&1
restore() {
  pkill -INT -f 'bin/docket start'; sleep 10
  stop_docker
  rm -rf /var/lib/docker /var/lib/containerd
  mv "$work/docker.kept" /var/lib/docker
  [ -d "$work/containerd.kept" ] && mv "$work/containerd.kept" /var/lib/containerd
  rm -rf "$work/cache" "$work/gomod" "$work/npm"
  echo "first-start: Docker's data is back; start it with: bash scripts/provision.sh docker"
}
trap restore EXIT

export XDG_CACHE_HOME=$work/cache GOMODCACHE=$work/gomod npm_config_cache=$work/npm
git clone -q "$repo" "$work/main"
cd "$work/main"
started=$(date +%s%N)
seconds() { echo "scale=1; ($(date +%s%N) - $started) / 1000000000" | bc; }
( npm install --no-audit --no-fund --loglevel=error && exec npm start ) 2>&1 \
  | while IFS= read -r line; do printf '%7s %s\n' "$(seconds)" "$line"; done > "$log" &
healthz=
for _ in $(seq 1 2400); do   # 20 minutes at most
  if [ -z "$healthz" ] && curl -sf -o /dev/null http://127.0.0.1:8100/healthz; then healthz=$(seconds); fi
  grep -q 'docket: running' "$log" && break
  sleep 0.5
done
cat "$log"
echo "first-start: gateway answered /healthz at ${healthz:-never} s; running at $(grep -m1 'docket: running' "$log" | awk '{print $1}') s"
