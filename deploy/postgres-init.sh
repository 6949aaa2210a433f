#!/bin/sh
# The roles and databases docker-compose.yml needs, on a new PostgreSQL
# (run by the postgres image from /docker-entrypoint-initdb.d; the local
# test runs it too, with PGHOST set):
#   $TEMPORAL_DB_USER (temporal)  LOGIN CREATEDB, for Temporal Server's two databases
#   $APP_DB         the database pgconvoy migrates (alias "app")
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v temporal_user="${TEMPORAL_DB_USER:-temporal}" -v temporal_password="$TEMPORAL_DB_PASSWORD" -v app_db="${APP_DB:-app}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'temporal_user', :'temporal_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'temporal_user') \gexec
SELECT format('CREATE DATABASE %I', :'app_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SQL
