#!/usr/bin/env bash
# The README's quick start: applies the sample migrations/ to a local database
# (pgconvoy_quickstart, created if missing) through the migrateDatabase
# workflow on an embedded Temporal dev server, then shows the database's status.
set -euo pipefail
cd "$(dirname "$0")/.."

admin_url=${PGCONVOY_QUICKSTART_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
exists=$(psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pgconvoy_quickstart'")
if [ "$exists" != "1" ]; then
  psql "$admin_url" -qc "CREATE DATABASE pgconvoy_quickstart"
  echo "quickstart: created database pgconvoy_quickstart"
fi

./bin/pgconvoy up --db local
./bin/pgconvoy status --db local
