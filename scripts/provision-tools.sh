#!/usr/bin/env bash
# Builds the real services pgconvoy needs from their Go modules, pinned, and
# links them into .tools/bin. Built binaries are cached outside the clone,
# keyed by name and version, so a fresh clone on the same machine reuses them.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_TAG=20260212

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

case "${1:-all}" in
  temporal) build_temporal ;;
  minio) build_minio ;;
  all)
    # The two builds are independent; run them side by side.
    build_temporal & t=$!
    build_minio & m=$!
    wait $t
    wait $m
    ;;
  *) echo "usage: provision-tools.sh [all|temporal|minio]" >&2; exit 2 ;;
esac
