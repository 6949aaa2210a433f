#!/bin/sh
# After Temporal Server answers: the namespace pgconvoy uses and the search
# attributes it keeps on its workflows (src/contracts/events.ts), both
# idempotent. temporalio/admin-tools in docker-compose.yml; locally the
# temporal CLI that `npm run setup` builds.
set -eu
: "${TEMPORAL_ADDRESS:?}"
namespace="${TEMPORAL_NAMESPACE:-default}"
t="--address $TEMPORAL_ADDRESS --namespace $namespace"
temporal operator cluster health --address "$TEMPORAL_ADDRESS"
# shellcheck disable=SC2086
temporal operator namespace describe $t >/dev/null 2>&1 || temporal operator namespace create $t --retention 72h
# A new namespace reaches every frontend's cache within seconds: try until the attributes are all there.
i=0
# shellcheck disable=SC2086
until [ "$(temporal operator search-attribute list $t 2>/dev/null | grep -c Pgconvoy)" = 4 ]; do
  i=$((i + 1))
  if [ $i -gt 60 ]; then echo "temporal-setup: the search attributes could not be created in $namespace" >&2; exit 1; fi
  for name in PgconvoyDb PgconvoyPhase PgconvoyVersion PgconvoyRollout; do
    temporal operator search-attribute create $t --name "$name" --type Keyword >/dev/null 2>&1 || true
  done
  sleep 1
done
echo "temporal-setup: namespace $namespace with pgconvoy's search attributes"
