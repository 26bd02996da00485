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
# and with pgbench, at the same concurrency, an equivalent single-row INSERT and a
# 100-row INSERT into the same responses table. Prints a table with both and the ratios.
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

cargo build --release --locked --bin rapport >/dev/null
BIN=${CARGO_TARGET_DIR:-target}/release/rapport

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
echo "== pgbench: single-row INSERT"
pgbench -n -c "$CONCURRENCY" -j "$THREADS" -T "$DURATION" -f "$OUT/single.sql" "$PGURL/$DB" | tee "$OUT/pg-single.txt"
echo "== pgbench: 100-row INSERT"
pgbench -n -c "$CONCURRENCY" -j "$THREADS" -T "$DURATION" -f "$OUT/batch.sql" "$PGURL/$DB" | tee "$OUT/pg-batch.txt"

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {print $NF; f=1} END {if (!f) print 0}' "$1"; }
tps() { awk '/^tps = / {print $3}' "$1"; }
single=$(rps "$OUT/single.txt"); batch=$(rps "$OUT/batch.txt")
pgs=$(tps "$OUT/pg-single.txt"); pgb=$(tps "$OUT/pg-batch.txt")
echo
echo "| measure (c=$CONCURRENCY, ${DURATION}s) | rapport | pgbench | ratio | p99 | errors |"
echo "|---|---|---|---|---|---|"
awk -v a="$single" -v b="$pgs" -v p="$(p99 "$OUT/single.txt")" -v e="$(errors "$OUT/single.txt")" \
  'BEGIN {printf "| single ingest, rows/s | %.0f | %.0f | %.0f%% | %s | %s |\n", a, b, 100*a/b, p, e}'
awk -v a="$batch" -v b="$pgb" -v p="$(p99 "$OUT/batch.txt")" -v e="$(errors "$OUT/batch.txt")" \
  'BEGIN {printf "| batch ingest (100/request), rows/s | %.0f | %.0f | %.0f%% | %s | %s |\n", a*100, b*100, 100*a/b, p, e}'
if [ -s "$OUT/lag.txt" ]; then
  sort -g "$OUT/lag.txt" | awk '{a[NR]=$1} END {printf "| outbox lag during single ingest (%d samples) | p50 %.3f s | p99 %.3f s | max %.3f s |\n", NR, a[int(NR*0.5)+0], a[int(NR*0.99)+0], a[NR]}'
fi
