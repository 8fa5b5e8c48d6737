#!/usr/bin/env bash
# Provisions what Docket needs on this machine, idempotently: the Temporal CLI, a running Docker
# engine, the offline base image docket/base:bookworm and the sample engine images.
# Quick when everything is there. Usage: scripts/provision.sh [temporal|docker|base|engines|chromium]...
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_VERSION=v1.5.1
BASE_IMAGE=docket/base:bookworm
TOOLS_DIR=${DOCKET_TOOLS_DIR:-$PWD/.tools}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/docket

say() { echo "provision: $*" >&2; }
die() { echo "provision: $*" >&2; exit 1; }
is_root_debian() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_updated=
apt_install() {
  is_root_debian || return 1
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

temporal_cli() {
  if [ -n "${TEMPORAL_CLI:-}" ]; then
    [ -x "$TEMPORAL_CLI" ] || die "TEMPORAL_CLI=$TEMPORAL_CLI is not an executable file"
    return
  fi
  command -v temporal >/dev/null 2>&1 && return
  [ -x "$TOOLS_DIR/bin/temporal" ] && return
  mkdir -p "$TOOLS_DIR/bin"
  if [ ! -x "$CACHE_DIR/bin/temporal" ]; then
    command -v go >/dev/null 2>&1 || die "the Temporal CLI is missing and Go is not installed to build it: install Go and run npm run setup again, put 'temporal' on PATH, or set TEMPORAL_CLI to its path"
    say "building the Temporal CLI $TEMPORAL_VERSION with Go (once; cached in $CACHE_DIR)"
    mkdir -p "$CACHE_DIR/bin"
    (cd "$CACHE_DIR" && CGO_ENABLED=0 GOBIN="$CACHE_DIR/bin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION")
  fi
  ln -sf "$CACHE_DIR/bin/temporal" "$TOOLS_DIR/bin/temporal"
}

docker_engine() {
  docker info >/dev/null 2>&1 && return
  if ! command -v dockerd >/dev/null 2>&1; then
    if is_root_debian; then
      say "installing Debian's docker.io"
      apt_install docker.io iptables ca-certificates || die "apt-get install docker.io failed"
    else
      die "Docker is not installed: install Docker Engine (Debian: sudo apt-get install docker.io) and run npm run setup again"
    fi
  fi
  if [ "$(id -u)" != 0 ]; then
    die "the Docker daemon is not answering: start it (sudo systemctl start docker) and make sure your user may use it (sudo usermod -aG docker \$USER)"
  fi
  say "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/docket-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  die "dockerd did not answer within 60s; see /var/log/docket-dockerd.log"
}

debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  echo "$uri"
}

base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  if is_root_debian; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || die "apt-get install debootstrap failed"
    local mirror root
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list(.d) for debootstrap"
    root=$(mktemp -d)
    say "building $BASE_IMAGE with debootstrap (about a minute, once)"
    if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
      tail -20 "$root.log" >&2
      rm -rf "$root" "$root.log"
      die "debootstrap failed"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root" "$root.log"
    return
  fi
  say "no root for debootstrap: trying Debian's official bookworm-slim image from a registry"
  docker pull debian:bookworm-slim >/dev/null && docker tag debian:bookworm-slim "$BASE_IMAGE" && return
  die "cannot build $BASE_IMAGE: run this script as root on Debian (debootstrap), or allow a registry pull of debian:bookworm-slim"
}

engine_images() {
  npx --no-install tsx scripts/engines-build.ts
}

chromium() {
  [ -x /usr/bin/chromium ] && return
  apt_install chromium fonts-dejavu-core || die "Chromium is needed for the browser tests: apt-get install chromium"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(temporal docker base engines)
for step in "${steps[@]}"; do
  case "$step" in
    temporal) temporal_cli ;;
    docker) docker_engine ;;
    base) base_image ;;
    engines) engine_images ;;
    chromium) chromium ;;
    *) die "unknown step $step (temporal, docker, base, engines, chromium)" ;;
  esac
done
