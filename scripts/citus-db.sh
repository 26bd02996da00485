# Sourced by the benchmark scripts: with CITUS_WORKERS ("host:port host:port"), the database
# $DB is made on the coordinator ($PGURL) and on every worker with the citus extension, and the
# workers are registered (rapport never creates a distributed database; the operator does).
# citus_drop_db drops it on every worker again. Without CITUS_WORKERS both do nothing.
CITUS_WORKERS=${CITUS_WORKERS:-}

citus_create_db() {
  [ -n "$CITUS_WORKERS" ] || return 0
  local url w coordinator
  for url in "$PGURL" $(for w in $CITUS_WORKERS; do echo "postgres://postgres@$w"; done); do
    psql -q "$url/postgres" -c "CREATE DATABASE \"$DB\"" >/dev/null
    psql -q "$url/$DB" -c "CREATE EXTENSION citus" >/dev/null
  done
  coordinator=${PGURL##*@}
  psql -q "$PGURL/$DB" -c "SELECT citus_set_coordinator_host('${coordinator%:*}', ${coordinator##*:})" >/dev/null
  for w in $CITUS_WORKERS; do
    psql -q "$PGURL/$DB" -c "SELECT citus_add_node('${w%:*}', ${w##*:})" >/dev/null
  done
}

citus_drop_db() {
  local w
  for w in $CITUS_WORKERS; do
    psql -q "postgres://postgres@$w/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
