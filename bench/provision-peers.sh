#!/usr/bin/env bash
# Builds the migration tools bench/run-cost.ts compares pgconvoy with, pinned,
# from the Go module proxy, into the same cache as scripts/provision-tools.sh
# (keyed by name and version), and links them into .tools/bin. Only the
# benchmark needs them: `npm run setup` does not build them.
set -euo pipefail

GOOSE_VERSION=v3.30.0
MIGRATE_VERSION=v4.20.1

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PGCONVOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgconvoy/tools}
bin="$root/.tools/bin"
mkdir -p "$bin" "$cache"

build() {
  local name="$1" version="$2" module="$3" tags="$4" exe="$5"
  local dir="$cache/$name-$version"
  if [ -x "$dir/$exe" ]; then
    echo "provision-peers: $name $version cached at $dir"
  else
    echo "provision-peers: building $name $version"
    mkdir -p "$dir"
    if ! GOBIN="$dir" go install -tags "$tags" "$module@$version" >"$dir.log" 2>&1; then
      tail -n 40 "$dir.log" >&2
      exit 1
    fi
  fi
  ln -sf "$dir/$exe" "$bin/$name"
}

# Only their PostgreSQL drivers.
build goose "$GOOSE_VERSION" github.com/pressly/goose/v3/cmd/goose 'no_clickhouse no_libsql no_mssql no_mysql no_sqlite3 no_vertica no_ydb no_turso no_duckdb no_starrocks no_spanner' goose
build migrate "$MIGRATE_VERSION" github.com/golang-migrate/migrate/v4/cmd/migrate 'postgres' migrate
