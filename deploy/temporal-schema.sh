#!/bin/sh
# Creates Temporal Server's two databases on PostgreSQL and brings their
# schemas up to date (idempotent): the temporalio/admin-tools image in
# docker-compose.yml, and .tools/bin/temporal-sql-tool locally.
set -eu
: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
export SQL_PLUGIN="${SQL_PLUGIN:-postgres12}" SQL_PORT="${SQL_PORT:-5432}"
schema="${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema}/postgresql/v12"
for pair in "${TEMPORAL_DB:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}:visibility"; do
  db=${pair%%:*}
  kind=${pair#*:}
  temporal-sql-tool --db "$db" create-database 2>/dev/null || true  # already there
  temporal-sql-tool --db "$db" setup-schema -v 0.0 2>/dev/null || true  # already set up
  temporal-sql-tool --db "$db" update-schema -d "$schema/$kind/versioned"
done
echo "temporal-schema: $SQL_HOST:$SQL_PORT ready"
