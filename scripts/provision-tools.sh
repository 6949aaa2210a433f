#!/usr/bin/env bash
# Builds the real services pgconvoy needs from their Go modules, pinned, and
# links them into .tools/bin. Built binaries are cached outside the clone,
# keyed by name and version, so a fresh clone on the same machine reuses them.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_TAG=20260212
TEMPORAL_SERVER_VERSION=1.29.1

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PGCONVOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgconvoy/tools}
bin="$root/.tools/bin"
mkdir -p "$bin" "$cache"

if ! command -v go >/dev/null 2>&1; then
  echo "provision-tools: Go is required to build the temporal CLI and MinIO (https://go.dev/dl)" >&2
  exit 1
fi

# Go lists every module it downloads; keep that in a log and show it only on failure.
quietly() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "provision-tools: failed: $* (full output in $log)" >&2
    return 1
  fi
}

build_temporal() {
  local dir="$cache/temporal-$TEMPORAL_CLI_VERSION"
  if [ -x "$dir/temporal" ] && "$dir/temporal" --version 2>/dev/null | grep -q "temporal version $TEMPORAL_CLI_VERSION"; then
    echo "provision-tools: temporal $TEMPORAL_CLI_VERSION cached at $dir"
  else
    echo "provision-tools: building temporal CLI $TEMPORAL_CLI_VERSION (a few minutes on a cold Go cache)"
    mkdir -p "$dir"
    GOBIN="$dir" quietly "$cache/temporal-$TEMPORAL_CLI_VERSION.log" go install \
      -ldflags "-X github.com/temporalio/cli/temporalcli.Version=$TEMPORAL_CLI_VERSION" \
      "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION"
  fi
  ln -sf "$dir/temporal" "$bin/temporal"
}

build_minio() {
  local dir="$cache/minio-$MINIO_TAG"
  if [ -x "$dir/minio" ]; then
    echo "provision-tools: minio $MINIO_TAG cached at $dir"
  else
    echo "provision-tools: building MinIO $MINIO_TAG (a few minutes on a cold Go cache)"
    mkdir -p "$dir"
    GOBIN="$dir" quietly "$cache/minio-$MINIO_TAG.log" go install "github.com/minio/minio@$MINIO_VERSION"
  fi
  ln -sf "$dir/minio" "$bin/minio"
}

# The production topology's server (docker-compose.yml runs the same
# version): the server and its temporal-sql-tool, with the module's config
# templates and SQL schemas linked beside them.
build_temporal_server() {
  local dir="$cache/temporal-server-$TEMPORAL_SERVER_VERSION"
  if [ -x "$dir/server" ] && [ -x "$dir/sql" ]; then
    echo "provision-tools: temporal-server $TEMPORAL_SERVER_VERSION cached at $dir"
  else
    echo "provision-tools: building Temporal Server $TEMPORAL_SERVER_VERSION (a few minutes on a cold Go cache)"
    mkdir -p "$dir"
    GOBIN="$dir" quietly "$cache/temporal-server-$TEMPORAL_SERVER_VERSION.log" go install \
      "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
      "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION"
  fi
  ln -sf "$dir/server" "$bin/temporal-server"
  ln -sf "$dir/sql" "$bin/temporal-sql-tool"
  local module
  module="$(go env GOMODCACHE)/go.temporal.io/server@v$TEMPORAL_SERVER_VERSION"
  [ -d "$module/schema" ] || quietly "$cache/temporal-server-$TEMPORAL_SERVER_VERSION.download.log" go mod download "go.temporal.io/server@v$TEMPORAL_SERVER_VERSION"
  ln -sfn "$module" "$root/.tools/temporal-server"
}

# The browser for the rollout page's test and docker-compose (to validate
# docker-compose.yml), from Debian's packages when they are missing.
install_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    # The builds are what setup is for; the tests that need these say so themselves.
    echo "provision-tools: warning: install ${missing[*]} (Debian: apt-get install ${missing[*]}); the rollout page's browser test and the compose check need them" >&2
    return 0
  fi
  echo "provision-tools: installing ${missing[*]} from Debian's packages"
  # The package lists of a fresh machine may be empty or stale: refresh them once if the install fails.
  DEBIAN_FRONTEND=noninteractive quietly "$cache/apt.log" apt-get install -y --no-install-recommends "${missing[@]}" 2>/dev/null \
    || { quietly "$cache/apt-update.log" apt-get update && DEBIAN_FRONTEND=noninteractive quietly "$cache/apt.log" apt-get install -y --no-install-recommends "${missing[@]}"; }
}

case "${1:-all}" in
  temporal) build_temporal ;;
  minio) build_minio ;;
  temporal-server) build_temporal_server ;;
  packages) install_packages ;;
  all)
    # The builds are independent; run them side by side.
    build_temporal & t=$!
    build_minio & m=$!
    build_temporal_server & s=$!
    install_packages & p=$!
    wait $t
    wait $m
    wait $s
    wait $p
    ;;
  *) echo "usage: provision-tools.sh [all|temporal|minio|temporal-server|packages]" >&2; exit 2 ;;
esac
