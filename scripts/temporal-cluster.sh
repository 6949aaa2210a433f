#!/usr/bin/env bash
# Temporal Server 1.29.1 on PostgreSQL, its four services as separate
# processes (frontend, history, matching, worker), as a production cluster
# runs them: the binaries `npm run setup` builds (.tools/bin/temporal-server,
# temporal-sql-tool, temporal), the schema on the machine's PostgreSQL, the
# namespace and pgconvoy's search attributes.
#
#   scripts/temporal-cluster.sh start    # idempotent: schema, config, services, namespace
#   scripts/temporal-cluster.sh status   # each service's pid, and the cluster's health
#   scripts/temporal-cluster.sh restart SERVICE   # one service: frontend, history, matching or worker
#   scripts/temporal-cluster.sh stop     # every service (the databases stay)
#
# Settings (environment):
#   TEMPORAL_CLUSTER_DIR   state: configs, pids, logs (default .pgconvoy/cluster)
#   TEMPORAL_PG_ADMIN_URL  a superuser's connection, to create the role (default postgres://postgres@127.0.0.1:5432/postgres)
#   SQL_HOST, SQL_PORT     Temporal's PostgreSQL (default 127.0.0.1:5432)
#   SQL_USER, SQL_PASSWORD its role (default temporal/temporal; created LOGIN CREATEDB if missing)
#   TEMPORAL_DB, TEMPORAL_VISIBILITY_DB   its databases (default temporal, temporal_visibility)
#   TEMPORAL_PORT_OFFSET   added to every port (default 0: frontend 7233, history 7234, matching 7235, worker 7239)
#   TEMPORAL_HISTORY_SHARDS  fixed when the schema is first set up (default 4)
#   TEMPORAL_SQL_MAX_CONNS each service's connections to its PostgreSQL (default 20; the visibility store has 2 more)
#   TEMPORAL_NAMESPACE     default "default"
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
dir="${TEMPORAL_CLUSTER_DIR:-$root/.pgconvoy/cluster}"
# The settings `start` resolved hold for the cluster's later commands (status, restart, stop).
if [ "${1:-}" != start ] && [ -f "$dir/settings.env" ]; then
  # shellcheck disable=SC1091
  . "$dir/settings.env"
fi
admin="${TEMPORAL_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SQL_PLUGIN=postgres12 SQL_HOST="${SQL_HOST:-127.0.0.1}" SQL_PORT="${SQL_PORT:-5432}" SQL_USER="${SQL_USER:-temporal}" SQL_PASSWORD="${SQL_PASSWORD:-temporal}"
export TEMPORAL_DB="${TEMPORAL_DB:-temporal}" TEMPORAL_VISIBILITY_DB="${TEMPORAL_VISIBILITY_DB:-temporal_visibility}"
offset="${TEMPORAL_PORT_OFFSET:-0}"
shards="${TEMPORAL_HISTORY_SHARDS:-4}"
max_conns="${TEMPORAL_SQL_MAX_CONNS:-20}"
services=(frontend history matching worker)
export PATH="$tools/bin:$PATH"
export TEMPORAL_ADDRESS="127.0.0.1:$((7233 + offset))"

say() { echo "temporal-cluster: $*" >&2; }

# The service's ports: gRPC, membership, pprof and metrics, each its own per process.
ports_of() {
  case "$1" in
    frontend) echo "$((7233 + offset)) $((6933 + offset)) $((7936 + offset)) $((8000 + offset))" ;;
    history) echo "$((7234 + offset)) $((6934 + offset)) $((7937 + offset)) $((8001 + offset))" ;;
    matching) echo "$((7235 + offset)) $((6935 + offset)) $((7938 + offset)) $((8002 + offset))" ;;
    worker) echo "$((7239 + offset)) $((6939 + offset)) $((7939 + offset)) $((8003 + offset))" ;;
    *) say "no service $1 (frontend, history, matching, worker)"; exit 2 ;;
  esac
}

pid_of() {
  local file="$dir/$1.pid"
  [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}

schema() {
  [ -x "$tools/bin/temporal-server" ] || { say "no .tools/bin/temporal-server: run npm run setup"; exit 1; }
  psql "$admin" -v ON_ERROR_STOP=1 -qAtc "SELECT 1 FROM pg_roles WHERE rolname = '$SQL_USER'" | grep -q 1 ||
    psql "$admin" -v ON_ERROR_STOP=1 -qc "CREATE ROLE \"$SQL_USER\" LOGIN CREATEDB PASSWORD '$SQL_PASSWORD'"
  TEMPORAL_SCHEMA_DIR="$tools/temporal-server/schema" sh "$root/deploy/temporal-schema.sh" >"$dir/schema.log" 2>&1 || { cat "$dir/schema.log" >&2; exit 1; }
}

# One config folder per service: the module's PostgreSQL template with this cluster's databases, role, shards and ports.
configure() {
  local service="$1" grpc membership pprof metrics
  read -r grpc membership pprof metrics <<<"$(ports_of "$service")"
  local conf="$dir/$service/config"
  mkdir -p "$conf"
  rm -rf "$conf/dynamicconfig"
  cp -r "$tools/temporal-server/config/dynamicconfig" "$conf/dynamicconfig"
  sed -e "s/numHistoryShards: 4/numHistoryShards: $shards/" \
    -e "s/maxConns: 20/maxConns: $max_conns/" -e "s/maxIdleConns: 20/maxIdleConns: $max_conns/" \
    -e "s/databaseName: \"temporal\"/databaseName: \"$TEMPORAL_DB\"/" \
    -e "s/databaseName: \"temporal_visibility\"/databaseName: \"$TEMPORAL_VISIBILITY_DB\"/" \
    -e "s/connectAddr: \"127.0.0.1:5432\"/connectAddr: \"$SQL_HOST:$SQL_PORT\"/" \
    -e "s/user: \"temporal\"/user: \"$SQL_USER\"/" \
    -e "s/password: \"temporal\"/password: \"$SQL_PASSWORD\"/" \
    -e "s/port: 7936/port: $pprof/" \
    -e "s/127.0.0.1:8000/127.0.0.1:$metrics/" \
    -e "s/grpcPort: 7233/grpcPort: $((7233 + offset))/" -e "s/membershipPort: 6933/membershipPort: $((6933 + offset))/" -e "s/httpPort: 7243/httpPort: $((7243 + offset))/" \
    -e "s/grpcPort: 7234/grpcPort: $((7234 + offset))/" -e "s/membershipPort: 6934/membershipPort: $((6934 + offset))/" \
    -e "s/grpcPort: 7235/grpcPort: $((7235 + offset))/" -e "s/membershipPort: 6935/membershipPort: $((6935 + offset))/" \
    -e "s/grpcPort: 7239/grpcPort: $((7239 + offset))/" -e "s/membershipPort: 6939/membershipPort: $((6939 + offset))/" \
    -e "s/rpcAddress: \"localhost:7233\"/rpcAddress: \"127.0.0.1:$((7233 + offset))\"/" \
    "$tools/temporal-server/config/development-postgres12.yaml" >"$conf/development.yaml"
}

start_service() {
  local service="$1"
  if pid_of "$service" >/dev/null; then return; fi
  (cd "$dir/$service" && exec setsid temporal-server --root "$dir/$service" --config config --env development --allow-no-auth start --service "$service" >>"$dir/$service.log" 2>&1) &
  echo $! >"$dir/$service.pid"
  say "$service started (pid $!, log $dir/$service.log)"
}

stop_service() {
  local service="$1" pid
  pid="$(pid_of "$service")" || { rm -f "$dir/$service.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/$service.pid"
  say "$service stopped"
}

listening() {
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

healthy() {
  for _ in $(seq 1 120); do
    temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  say "the frontend at $TEMPORAL_ADDRESS did not answer in 60 s; logs in $dir"
  return 1
}


mkdir -p "$dir"
case "${1:-}" in
  start)
    schema
    for v in SQL_HOST SQL_PORT SQL_USER SQL_PASSWORD TEMPORAL_DB TEMPORAL_VISIBILITY_DB; do printf '%s=%q\n' "$v" "${!v}"; done >"$dir/settings.env"
    printf 'TEMPORAL_PORT_OFFSET=%q\nTEMPORAL_HISTORY_SHARDS=%q\nTEMPORAL_SQL_MAX_CONNS=%q\nTEMPORAL_PG_ADMIN_URL=%q\n' "$offset" "$shards" "$max_conns" "$admin" >>"$dir/settings.env"
    # History first, alone: on a new schema each service writes the cluster's
    # metadata as it starts, and two doing it at once can make one exit.
    for s in history matching frontend worker; do
      pid_of "$s" >/dev/null || configure "$s"
      start_service "$s"
      [ "$s" != history ] || listening "$((7234 + offset))" || { say "history did not listen on $((7234 + offset)) in 60 s; log $dir/history.log"; exit 1; }
    done
    healthy
    for s in "${services[@]}"; do
      pid_of "$s" >/dev/null || { say "$s exited after it started:"; tail -n 5 "$dir/$s.log" >&2; exit 1; }
    done
    sh "$root/deploy/temporal-setup.sh" >&2
    say "ready at $TEMPORAL_ADDRESS"
    ;;
  stop)
    for s in worker frontend matching history; do stop_service "$s"; done
    ;;
  restart)
    stop_service "${2:?restart which service?}"
    start_service "$2"
    [ "$2" != frontend ] || healthy
    ;;
  status)
    for s in "${services[@]}"; do echo "$s $(pid_of "$s" || echo stopped)"; done
    temporal operator cluster health --address "$TEMPORAL_ADDRESS"
    ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
