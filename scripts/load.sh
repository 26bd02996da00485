#!/usr/bin/env bash
# Load benchmark for response ingestion, side by side with pgbench on the same Postgres.
#
#   scripts/load.sh            # 30 s per phase, concurrency 32
#   DURATION=10 scripts/load.sh
#   OUTBOX_WORKERS=0 scripts/load.sh   # the same, with nobody processing the outbox (A/B)
#   PGURL=postgres://postgres@127.0.0.1:9710 CITUS_WORKERS="127.0.0.1:9711 127.0.0.1:9712" scripts/load.sh
#                              # on a Citus coordinator: the database is made on every node with
#                              # the extension and the workers registered; rapport distributes it
#
# Starts rapport (release) on a loopback port against a fresh database, mints a token,
# then measures with wrk (a Lua script gives every request a unique external_id, which
# oha cannot do for a body):
#   1. POST /v1/responses        (WAI-SR, one per request)
#   2. POST /v1/responses/batch  (100 per request)
# and with pgbench, at the same concurrency (rapport stopped first, so that its outbox
# workers take no CPU from the baselines), three baselines of each:
#   simple     the same row(s) in the simple protocol (what benches/README.md compared with
#              before issue #32: Postgres parses that long statement every time);
#   prepared   the same row(s), `-M prepared` (rapport prepares its statements too);
#   full work  `-M prepared`, one transaction per response with its audit event and its
#              outbox event (a batch: 100 responses, their 100 outbox events and one
#              `responses.batch_created` audit event), the durable work of a 201.
# Prints a table with rapport, the baselines and the ratios, and the outbox lag.
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
CONCURRENCY=${CONCURRENCY:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18181}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB="rapport_load_$$"
OUT=${OUT:-/tmp/rapport-load-$$}
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }
command -v pgbench >/dev/null || { echo "pgbench (postgresql-client) is needed" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then   # BIN=/path/to/rapport measures another build
  cargo build --release --locked --bin rapport >/dev/null
  BIN=${CARGO_TARGET_DIR:-target}/release/rapport
fi

# shellcheck source=scripts/citus-db.sh
. scripts/citus-db.sh
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  citus_drop_db
}
trap cleanup EXIT
citus_create_db

DATABASE_URL="$PGURL/$DB?sslmode=disable" RAPPORT_RATE_LIMIT_PER_MINUTE=1000000000 RAPPORT_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  RAPPORT_DB_POOL_SIZE=${POOL_SIZE:-32} RAPPORT_OUTBOX_WORKERS=${OUTBOX_WORKERS:-2} \
  RAPPORT_BOOTSTRAP_CLIENT_ID=load-admin RAPPORT_BOOTSTRAP_CLIENT_SECRET=load-secret \
  "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null

TOKEN=$(curl -fs -u load-admin:load-secret -d grant_type=client_credentials -d scope=responses:write \
  "http://127.0.0.1:$PORT/v1/oauth/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

cat >"$OUT/single.lua" <<LUA
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) thread_id = id end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  counter = counter + 1
  local body = string.format('{"instrument":"wai-sr","patient":"p-%d","clinician":"dr-%d","administered_at":"2026-03-04T15:20:00Z","session":3,"external_id":"load-%d-%d","answers":{"1":4,"2":5,"3":3,"4":4,"5":5,"6":4,"7":3,"8":4,"9":5,"10":4,"11":3,"12":4}}', counter % 5000, counter % 50, thread_id, counter)
  return wrk.format(nil, "/v1/responses", nil, body)
end
LUA

cat >"$OUT/batch.lua" <<LUA
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) thread_id = id end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  counter = counter + 1
  local items = {}
  for i = 1, 100 do
    items[i] = string.format('{"instrument":"wai-sr","patient":"p-%d","administered_at":"2026-03-04T15:20:00Z","external_id":"batch-%d-%d-%d","answers":{"1":4,"2":5,"3":3,"4":4,"5":5,"6":4,"7":3,"8":4,"9":5,"10":4,"11":3,"12":4}}', i, thread_id, counter, i)
  end
  return wrk.format(nil, "/v1/responses/batch", nil, '{"responses":[' .. table.concat(items, ",") .. ']}')
end
LUA

echo "== wrk: single ingest (${DURATION}s, c=$CONCURRENCY)"
# The outbox lag (age of the oldest unprocessed event, from /metrics) sampled meanwhile.
( while :; do curl -fs "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk '/^outbox_lag_seconds/ {print $2}'; sleep 0.25; done ) >"$OUT/lag.txt" &
LAG_PID=$!
wrk -t"$THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency -s "$OUT/single.lua" "http://127.0.0.1:$PORT" | tee "$OUT/single.txt"
kill "$LAG_PID" 2>/dev/null || true
# The SPEC's lag: processed_at - created_at of the window's outbox events, once all are processed.
for _ in $(seq 1 120); do
  [ "$(psql -qtA "$PGURL/$DB" -c "SELECT count(*) FROM outbox_events WHERE processed_at IS NULL")" = 0 ] && break
  sleep 0.5
done
psql -qtA "$PGURL/$DB" -c "SELECT count(*), round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY processed_at - created_at))::numeric, 3),
    round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY processed_at - created_at))::numeric, 3)
  FROM outbox_events WHERE processed_at IS NOT NULL" >"$OUT/lag-events.txt"
echo "== wrk: batch ingest, 100 per request (${DURATION}s, c=$CONCURRENCY)"
wrk -t"$THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency -s "$OUT/batch.lua" "http://127.0.0.1:$PORT" | tee "$OUT/batch.txt"

# pgbench: the same INSERTs rapport makes (row + score columns), straight into the table.
ORG=$(psql -qtA "$PGURL/$DB" -c "SELECT id FROM organizations LIMIT 1")
ROW="('$ORG'::uuid, gen_random_uuid(), 'wai-sr', 1, 'p-' || (random()*5000)::int, 'dr-9', NULL, 'patient', now(), 3, '{\"1\":4,\"2\":5,\"3\":3,\"4\":4,\"5\":5,\"6\":4,\"7\":3,\"8\":4,\"9\":5,\"10\":4,\"11\":3,\"12\":4}'::jsonb, 'pg-' || gen_random_uuid(), '\\x00'::bytea, 'api', 'pgbench', 48, 4, 75, '{\"task\":{\"total\":16,\"mean\":4}}'::jsonb, 12, 0, false, '{}'::text[])"
COLS="(org_id, id, instrument_key, instrument_version, patient, clinician, episode, rater, administered_at, session, answers, external_id, payload_hash, source, created_by, total, mean, pomp, subscales, answered, missing, prorated, flags)"
echo "INSERT INTO responses $COLS VALUES $ROW;" >"$OUT/single.sql"
{
  printf "INSERT INTO responses %s VALUES " "$COLS"
  for i in $(seq 1 99); do printf "%s, " "$ROW"; done
  printf "%s;\n" "$ROW"
} >"$OUT/batch.sql"
# The full work of one response: the row, its audit event and its outbox event, one commit.
AUDIT_ONE="INSERT INTO audit_events (org_id, id, actor, action, resource_type, resource_id, detail)
  SELECT org_id, gen_random_uuid(), 'pgbench', 'response.created', 'response', id::text,
    jsonb_build_object('instrument', instrument_key, 'version', instrument_version, 'source', source) FROM r"
OUTBOX="INSERT INTO outbox_events (org_id, id, kind, response_id, patient, instrument_key, rater)
  SELECT org_id, gen_random_uuid(), 'response.created', id, patient, instrument_key, rater FROM r"
RET="RETURNING org_id, id, patient, instrument_key, instrument_version, rater, source"
echo "WITH r AS (INSERT INTO responses $COLS VALUES $ROW $RET), a AS ($AUDIT_ONE) $OUTBOX;" >"$OUT/full-single.sql"
{
  printf "WITH r AS (INSERT INTO responses %s VALUES " "$COLS"
  for i in $(seq 1 99); do printf "%s, " "$ROW"; done
  printf "%s %s), " "$ROW" "$RET"
  printf "a AS (INSERT INTO audit_events (org_id, id, actor, action, resource_type, resource_id, detail)
    SELECT min(org_id::text)::uuid, gen_random_uuid(), 'pgbench', 'responses.batch_created', 'response', NULL,
      jsonb_build_object('created', count(*), 'ids', jsonb_agg(id)) FROM r) %s;\n" "$OUTBOX"
} >"$OUT/full-batch.sql"
# The baselines measure Postgres alone: rapport (and its outbox workers) stop first.
kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
PID=
for shape in single batch; do
  for mode in simple prepared full; do
    file="$OUT/$shape.sql"; protocol=simple
    [ "$mode" = simple ] || protocol=prepared
    [ "$mode" = full ] && file="$OUT/full-$shape.sql"
    echo "== pgbench: $shape, $mode"
    pgbench -n -M "$protocol" -c "$CONCURRENCY" -j "$THREADS" -T "$DURATION" -f "$file" "$PGURL/$DB" \
      | tee "$OUT/pg-$shape-$mode.txt"
  done
done

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {print $NF; f=1} END {if (!f) print 0}' "$1"; }
tps() { awk '/^tps = / {print $3}' "$1"; }
single=$(rps "$OUT/single.txt"); batch=$(rps "$OUT/batch.txt")
echo
echo "| measure (c=$CONCURRENCY, ${DURATION}s) | rapport | pgbench simple | pgbench prepared | pgbench full work | ratio to prepared | ratio to full work | rapport p99 | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for shape in single batch; do
  [ "$shape" = single ] && r=$single || r=$(awk -v b="$batch" 'BEGIN {print b * 100}')
  [ "$shape" = single ] && rows=1 || rows=100
  awk -v name="$shape" -v r="$r" -v n="$rows" -v s="$(tps "$OUT/pg-$shape-simple.txt")" -v p="$(tps "$OUT/pg-$shape-prepared.txt")" \
      -v f="$(tps "$OUT/pg-$shape-full.txt")" -v q="$(p99 "$OUT/$shape.txt")" -v e="$(errors "$OUT/$shape.txt")" \
    'BEGIN {printf "| %s ingest, rows/s | %.0f | %.0f | %.0f | %.0f | %.2fx | %.2fx | %s | %s |\n", name, r, s*n, p*n, f*n, r/(p*n), r/(f*n), q, e}'
done
if [ -s "$OUT/lag.txt" ]; then
  sort -g "$OUT/lag.txt" | awk '{a[NR]=$1} END {printf "| outbox lag during single ingest (%d samples) | p50 %.3f s | p99 %.3f s | max %.3f s |\n", NR, a[int(NR*0.5)+0], a[int(NR*0.99)+0], a[NR]}'
fi
IFS='|' read -r n l50 l99 <"$OUT/lag-events.txt" || true
echo "| outbox lag of the single-ingest events (processed_at - created_at, $n events) | p50 ${l50} s | p99 ${l99} s |"
