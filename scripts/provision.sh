#!/usr/bin/env bash
# Provisions what Docket needs on this machine, idempotently: the Temporal CLI, a running Docker
# engine, the offline base image docket/base:bookworm, the sample engine images, and Versity's S3
# gateway for the blob store tests.
# On request: the production Temporal server and sql tool, its Web UI server, and PostgreSQL 15.
# On request: Compose (docker-compose.yml, npm run test:stack).
# Quick when everything is there. Usage: scripts/provision.sh [temporal|docker|base|engines|chromium|schemathesis|cortex4py|versitygw|temporal-server|temporal-ui|postgres|compose]...
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_VERSION=v1.5.1
TEMPORAL_SERVER_VERSION=v1.29.1
TEMPORAL_UI_VERSION=v2.42.1
VERSITYGW_VERSION=v1.8.0
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
  [ -x "$CACHE_DIR/bin/temporal" ] || temporal_cli_build
  mkdir -p "$TOOLS_DIR/bin"
  ln -sf "$CACHE_DIR/bin/temporal" "$TOOLS_DIR/bin/temporal"
}

# Whether the temporal step has to build the CLI (nothing given, on PATH, linked or cached).
temporal_cli_missing() {
  [ -z "${TEMPORAL_CLI:-}" ] && ! command -v temporal >/dev/null 2>&1 && [ ! -x "$TOOLS_DIR/bin/temporal" ] && [ ! -x "$CACHE_DIR/bin/temporal" ]
}

temporal_cli_build() {
  go_build "the Temporal CLI $TEMPORAL_VERSION" "$CACHE_DIR/bin" "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION"
}

# The Go builds the steps ask for (the Temporal CLI, versitygw, the Temporal server and its Web UI: about
# 25 minutes cold on two busy cores) run one after another in one background job, started before the
# first step, while debootstrap, the engine images, Chromium and the virtualenvs go on in the
# foreground; their `go: downloading` chatter goes to a log file, and a line every PROGRESS_EVERY
# seconds says they are still going. Each step that needs a build finishes once the job is done.
PROGRESS_EVERY=${DOCKET_PROVISION_PROGRESS_SECONDS:-20}
background_pid=
background_ticker=
background_what=
background_log=
background_started=

background_start() {
  background_what=$1 background_log=$2
  shift 2
  background_started=$(date +%s)
  "$@" >"$background_log" 2>&1 &
  background_pid=$!
  (
    while sleep "$PROGRESS_EVERY" </dev/null >/dev/null 2>&1; do
      kill -0 "$background_pid" 2>/dev/null || exit 0
      say "still building $background_what ($(( $(date +%s) - background_started )) s)"
    done
  ) &
  background_ticker=$!
}

# Waits for the background build, then does what it was for; a failed build shows its log's tail.
background_wait() {
  [ -n "$background_pid" ] || return 0
  local status=0
  wait "$background_pid" || status=$?
  kill "$background_ticker" 2>/dev/null || true
  wait "$background_ticker" 2>/dev/null || true
  background_pid=
  if [ "$status" != 0 ]; then
    tail -20 "$background_log" >&2
    die "building $background_what failed (exit $status); its whole log is $background_log"
  fi
  say "built $background_what in $(( $(date +%s) - background_started ))s (log: $background_log)"
}

# A process and everything under it, children first: the job's `go install` runs in subshells of the
# job, which a signal to the job alone would leave running.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

# A step that failed, or a stop of the script (npm start stopped while it provisions), must not leave
# a build running behind the script's back.
background_stop() {
  [ -n "$background_pid" ] || return 0
  kill_tree "$background_pid"
  kill_tree "$background_ticker"
}
trap background_stop EXIT

# Builds Go packages into a cache folder of their own, once, saying what and how long it took.
go_build() {
  local what=$1 bin=$2
  shift 2
  command -v go >/dev/null 2>&1 || die "$what is missing and Go is not installed to build it: install Go and run this step again"
  say "building $what with Go (once, minutes when cold; cached in $bin)"
  local started
  started=$(date +%s)
  mkdir -p "$bin"
  (cd "$CACHE_DIR" && CGO_ENABLED=0 GOBIN="$bin" go install "$@")
  say "built $what in $(( $(date +%s) - started ))s"
}

temporal_server_missing() { [ ! -x "$CACHE_DIR/temporal-server/bin/server" ] || [ ! -x "$CACHE_DIR/temporal-server/bin/sql" ]; }
temporal_server() {
  local bin=$CACHE_DIR/temporal-server/bin
  temporal_server_missing || return 0
  go_build "the Temporal server and sql tool $TEMPORAL_SERVER_VERSION" "$bin" \
    "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"
}

# The UI server's binary is also called `server`: its own folder keeps it from replacing Temporal's.
temporal_ui_missing() { [ ! -x "$CACHE_DIR/temporal-ui/bin/server" ]; }
temporal_ui() {
  local bin=$CACHE_DIR/temporal-ui/bin
  temporal_ui_missing || return 0
  go_build "the Temporal Web UI server $TEMPORAL_UI_VERSION" "$bin" "github.com/temporalio/ui-server/v2/cmd/server@$TEMPORAL_UI_VERSION"
}

postgres() {
  [ -x /usr/lib/postgresql/15/bin/postgres ] && return
  say "installing Debian's postgresql (15)"
  apt_install postgresql || die "PostgreSQL 15 is needed for the production Temporal server: apt-get install postgresql (Debian bookworm), or point DOCKET_TEMPORAL_DB_HOST at one you run"
}

# docker-compose.yml's runner: Compose v2 when the plugin is there, else Debian's standalone docker-compose (1.29).
compose() {
  docker compose version >/dev/null 2>&1 && return
  command -v docker-compose >/dev/null 2>&1 && return
  say "installing Debian's docker-compose"
  apt_install docker-compose || die "Compose is needed for npm run test:stack: install the docker compose plugin, or apt-get install docker-compose"
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
  # A session of its own: the daemon is shared, so a signal to the process group that provisioned it
  # (a CI job stopped, a test run killed) must not stop it under everyone else.
  setsid nohup dockerd >/var/log/docket-dockerd.log 2>&1 </dev/null &
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
    # At a lower CPU priority: on two cores the Go builds beside it (the Temporal CLI, which the dev
    # server and so the gateway wait for) should not be the ones that wait.
    if ! nice -n 10 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
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

# The S3-compatible server the blob store tests run against (test/helpers/versitygw.ts finds it in the cache).
versitygw_missing() { [ -z "${VERSITYGW:-}" ] && [ ! -x "$CACHE_DIR/versitygw/bin/versitygw" ]; }
versitygw() {
  if [ -n "${VERSITYGW:-}" ]; then
    [ -x "$VERSITYGW" ] || die "VERSITYGW=$VERSITYGW is not an executable file"
    return
  fi
  versitygw_missing || return 0
  go_build "Versity's S3 gateway $VERSITYGW_VERSION" "$CACHE_DIR/versitygw/bin" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
}

# The API fuzzer (test/integration/schemathesis.test.ts), in a virtualenv kept under the cache folder.
# Pinned to one major version so its checks stay put.
SCHEMATHESIS_REQUIREMENT='schemathesis>=4.3,<5'
schemathesis_venv() {
  local venv=$CACHE_DIR/schemathesis-venv
  [ -x "$venv/bin/schemathesis" ] && return
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv || die "python3 with venv is needed for the API fuzzer: apt-get install python3-venv"
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; } || die "python3 -m venv failed: apt-get install python3-venv"
  "$venv/bin/python" -m pip install --quiet "$SCHEMATHESIS_REQUIREMENT" || die "pip could not install $SCHEMATHESIS_REQUIREMENT into $venv"
  say "schemathesis $("$venv/bin/schemathesis" --version | awk '{print $NF}') in $venv"
}

# TheHive's Python client for Cortex (test/integration/cortex-api.test.ts drives Docket's /api with it),
# pinned to the release the Cortex API is tested against; python-magic beside it needs libmagic.
CORTEX4PY_REQUIREMENT='cortex4py==2.1.0'
cortex4py_venv() {
  local venv=$CACHE_DIR/cortex4py-venv
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import cortex4py, magic; magic.Magic(mime=True)' 2>/dev/null; then return; fi
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv || die "python3 with venv is needed for cortex4py: apt-get install python3-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; } || die "python3 -m venv failed: apt-get install python3-venv"
  "$venv/bin/python" -m pip install --quiet "$CORTEX4PY_REQUIREMENT" || die "pip could not install $CORTEX4PY_REQUIREMENT into $venv"
  "$venv/bin/python" -c 'import magic; magic.Magic(mime=True)' 2>/dev/null || apt_install libmagic1 || die "cortex4py's python-magic needs libmagic: apt-get install libmagic1"
  say "cortex4py 2.1.0 in $venv"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(temporal docker base engines versitygw)
provision_started=$(date +%s)

# Every Go build the steps need, in the order asked, as one background job (see background_start).
go_steps=()
for step in "${steps[@]}"; do
  case "$step" in
    temporal) temporal_cli_missing && go_steps+=(temporal) ;;
    versitygw) versitygw_missing && go_steps+=(versitygw) ;;
    temporal-server) temporal_server_missing && go_steps+=(temporal-server) ;;
    temporal-ui) temporal_ui_missing && go_steps+=(temporal-ui) ;;
  esac
done
go_steps_build() {
  local step
  for step in "${go_steps[@]}"; do
    case "$step" in
      temporal) temporal_cli_build ;;
      versitygw) versitygw ;;
      temporal-server) temporal_server ;;
      temporal-ui) temporal_ui ;;
    esac
  done
}
if [ ${#go_steps[@]} -gt 0 ]; then
  command -v go >/dev/null 2>&1 || die "${go_steps[*]} must be built with Go, which is not installed: install Go and run this again (or set TEMPORAL_CLI / VERSITYGW to binaries you have)"
  mkdir -p "$CACHE_DIR"
  go_what=
  for step in "${go_steps[@]}"; do
    case "$step" in
      temporal) name="the Temporal CLI" ;;
      versitygw) name="versitygw" ;;
      temporal-server) name="the Temporal server" ;;
      temporal-ui) name="the Temporal Web UI" ;;
    esac
    go_what=${go_what:+$go_what, }$name
  done
  say "building with Go in the background: $go_what (once; cached in $CACHE_DIR; Go's caches $(go env GOMODCACHE) and $(go env GOCACHE) are reused)"
  background_start "$go_what" "$CACHE_DIR/go-builds.log" go_steps_build
fi
in_background() {
  local each
  for each in "${go_steps[@]}"; do [ "$each" = "$1" ] && return 0; done
  return 1
}

for step in "${steps[@]}"; do
  if in_background "$step"; then
    say "step $step: building in the background; the next steps run meanwhile"
    continue
  fi
  step_started=$(date +%s)
  case "$step" in
    temporal) temporal_cli ;;
    docker) docker_engine ;;
    base) base_image ;;
    engines) engine_images ;;
    chromium) chromium ;;
    schemathesis) schemathesis_venv ;;
    cortex4py) cortex4py_venv ;;
    versitygw) versitygw ;;
    temporal-server) temporal_server ;;
    temporal-ui) temporal_ui ;;
    postgres) postgres ;;
    compose) compose ;;
    *) die "unknown step $step (temporal, docker, base, engines, chromium, schemathesis, cortex4py, versitygw, temporal-server, temporal-ui, postgres, compose)" ;;
  esac
  say "step $step: ready ($(( $(date +%s) - step_started ))s)"
done
background_wait
# What the background built is linked or checked now, as its step would have done.
for step in "${go_steps[@]}"; do
  case "$step" in
    temporal) temporal_cli ;;
  esac
done
say "done in $(( $(date +%s) - provision_started ))s (${steps[*]})"
