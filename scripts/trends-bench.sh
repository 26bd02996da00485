#!/usr/bin/env bash
# Analytics benchmark: patient trends p50/p99 at concurrency 8 over 1,000,000 stored
# responses (200,000 patients x 5 points, plus 10 patients x 200 points), against pgbench
# selecting the same rows through the same index (alone, and with the audit insert a read
# must commit); and the clinician summaries' latency.
# Rows are generated straight into a fresh database. Loopback only; stops by itself.
#
#   scripts/trends-bench.sh            # 15 s per phase
#   DURATION=10 scripts/trends-bench.sh
#   PGURL=postgres://postgres@127.0.0.1:9710 CITUS_WORKERS="127.0.0.1:9711 127.0.0.1:9712" scripts/trends-bench.sh
#                              # on a Citus coordinator (see scripts/citus-db.sh)
#   EXPECTED=1 scripts/trends-bench.sh
#                              # then the trend phases again with a fitted expected-response
#                              # model in force (every point gets its expectation)
#   BIN=/path/to/rapport scripts/trends-bench.sh
#                              # another build (e.g. an earlier commit's) instead of this one
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-8}
PORT=${PORT:-18184}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB="rapport_trends_$$"
OUT=${OUT:-/tmp/rapport-trends-$$}
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin rapport >/dev/null 2>&1
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
  RAPPORT_BOOTSTRAP_CLIENT_ID=bench RAPPORT_BOOTSTRAP_CLIENT_SECRET=bench-secret "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(curl -fs -u bench:bench-secret -d grant_type=client_credentials "http://127.0.0.1:$PORT/v1/oauth/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
ORG=$(psql -qtA "$PGURL/$DB" -c "SELECT id FROM organizations LIMIT 1")

echo "== generating 1,002,000 responses"
gen() { # $1 = first patient number, $2 = last, $3 = points per patient
  psql -q "$PGURL/$DB" -c "INSERT INTO responses (org_id, id, instrument_key, instrument_version, patient, clinician,
      rater, administered_at, session, answers, payload_hash, source, created_by, total, mean, pomp, subscales,
      answered, missing, prorated, flags)
    SELECT '$ORG', gen_random_uuid(), 'wai-sr', 1, 'p-' || p, 'dr-' || (p % 2000), 'patient',
      timestamptz '2025-01-01' + (s || ' weeks')::interval, s,
      '{\"1\":4,\"2\":5,\"3\":3,\"4\":4,\"5\":5,\"6\":4,\"7\":3,\"8\":4,\"9\":5,\"10\":4,\"11\":3,\"12\":4}'::jsonb,
      '\\x00'::bytea, 'api', 'bench', t, t / 12.0, (t - 12) / 0.48,
      jsonb_build_object('task', jsonb_build_object('total', t / 3.0, 'mean', t / 12.0)), 12, 0, false, '{}'::text[]
    FROM generate_series($1, $2) AS p, generate_series(1, $3) AS s,
      LATERAL (SELECT (30 + (p * 7 + s * 13) % 25)::float8 AS t) AS v" >/dev/null
}
gen 0 199999 5
gen 1000000 1000009 200
# Rows written straight into the table have no outbox events: keep their clinician series
# as the outbox worker would (the same statement as the migration's backfill).
psql -q "$PGURL/$DB" -c "INSERT INTO clinician_series (org_id, instrument_key, rater, clinician, patient, totals,
    instrument_version, below_cutoff, session3_sum, session3_count, versions)
  SELECT org_id, instrument_key, rater, clinician, patient, array_agg(total ORDER BY administered_at, seq),
    max(instrument_version), count(*) FILTER (WHERE 'below_cutoff' = ANY(flags)),
    sum(total) FILTER (WHERE session = 3), count(*) FILTER (WHERE session = 3),
    array_agg(DISTINCT instrument_version)
  FROM responses WHERE status = 'active' AND total IS NOT NULL AND clinician IS NOT NULL
  GROUP BY org_id, instrument_key, rater, clinician, patient" >/dev/null
# A checkpoint now, not during the measurement: the bulk load left a gigabyte of WAL, and
# the checkpoint it triggers would stall every commit (each read's audit event) for seconds.
psql -q "$PGURL/$DB" -c "VACUUM ANALYZE responses" -c "VACUUM ANALYZE clinician_series" -c "CHECKPOINT" >/dev/null

cat >"$OUT/trends.lua" <<LUA
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format("GET", "/v1/patients/p-" .. math.random(0, 199999) .. "/trends?instrument=wai-sr")
end
LUA
cat >"$OUT/long.lua" <<LUA
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format("GET", "/v1/patients/p-" .. math.random(1000000, 1000009) .. "/trends?instrument=wai-sr")
end
LUA
# Warm up: the first request computes the organisation norms (then cached).
curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/patients/p-1/trends?instrument=wai-sr"

SELECT="SELECT id, administered_at, session, clinician, instrument_version, total, mean, pomp, subscales, flags
  FROM responses WHERE org_id = '$ORG' AND patient = 'p-' || :p AND instrument_key = 'wai-sr' AND rater = 'patient'
  AND status = 'active' AND total IS NOT NULL ORDER BY administered_at, seq;"
printf '\\set p random(0, 199999)\n%s\n' "$SELECT" >"$OUT/select5.sql"
printf '\\set p random(1000000, 1000009)\n%s\n' "$SELECT" >"$OUT/select200.sql"
# The same select and what rapport must also do for each read: commit its audit event.
AUDIT="INSERT INTO audit_events (org_id, id, actor, action, resource_type, detail)
  VALUES ('$ORG', gen_random_uuid(), 'bench', 'trend.read', 'analytics', '{}');"
printf '\\set p random(0, 199999)\nBEGIN;\n%s\n%s\nCOMMIT;\n' "$SELECT" "$AUDIT" >"$OUT/audited5.sql"
printf '\\set p random(1000000, 1000009)\nBEGIN;\n%s\n%s\nCOMMIT;\n' "$SELECT" "$AUDIT" >"$OUT/audited200.sql"

pg_percentiles() { # pgbench per-transaction log -> p50 p99 in ms
  cat "$1"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'
}
wrk_pct() { awk -v q="$2" '$1 == q {print $2}' "$1"; }

echo "| measure (c=$CONCURRENCY, ${DURATION}s) | rapport p50 | rapport p99 | select p50 | select p99 | p99 ratio | select + audit commit p99 | p99 ratio to it |"
echo "|---|---|---|---|---|---|---|---|"
for kind in 5 200; do
  script=$([ "$kind" = 5 ] && echo trends.lua || echo long.lua)
  wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --latency -s "$OUT/$script" "http://127.0.0.1:$PORT" >"$OUT/wrk-$kind.txt"
  rm -rf "$OUT/pg-$kind" && mkdir -p "$OUT/pg-$kind"
  (cd "$OUT/pg-$kind" && pgbench -n -M prepared -c "$CONCURRENCY" -j 2 -T "$DURATION" -l \
     -f "$OUT/select$kind.sql" "$PGURL/$DB" >"$OUT/pgbench-$kind.txt" 2>&1)
  read -r s50 s99 < <(pg_percentiles "$OUT/pg-$kind")
  rm -rf "$OUT/pga-$kind" && mkdir -p "$OUT/pga-$kind"
  (cd "$OUT/pga-$kind" && pgbench -n -M prepared -c "$CONCURRENCY" -j 2 -T "$DURATION" -l \
     -f "$OUT/audited$kind.sql" "$PGURL/$DB" >"$OUT/pgbench-audited-$kind.txt" 2>&1)
  read -r _ a99 < <(pg_percentiles "$OUT/pga-$kind")
  r50=$(wrk_pct "$OUT/wrk-$kind.txt" 50%); r99=$(wrk_pct "$OUT/wrk-$kind.txt" 99%)
  to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else {sub(/s$/,"",v); print v*1000} }'; }
  awk -v k="$kind" -v a="$(to_ms "$r50")" -v b="$(to_ms "$r99")" -v c="$s50" -v d="$s99" -v e="$a99" \
    'BEGIN {printf "| trends, %d-point patients | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.1fx | %.2f ms | %.1fx |\n", k, a, b, c, d, b/d, e, b/e}'
  grep -E "Non-2xx" "$OUT/wrk-$kind.txt" || true
done

if [ "${EXPECTED:-0}" = 1 ]; then
  # A model in force for WAI-SR (coefficients of the shape a clinic's fit has): each trend
  # read now also reads the model and the patient's whole courses, and judges every point.
  psql -q "$PGURL/$DB" -c "INSERT INTO expected_models (org_id, instrument_key, rater, status, n_courses, n_points,
      intercept, intake, log_t, intake_log_t, residual_sd, intake_p10, intake_p50, intake_p90, fitted_at)
    VALUES ('$ORG', 'wai-sr', 'patient', 'fitted', 200010, 801990, 8.0, 0.8, 1.5, -0.01, 4.0, 32, 42, 52, now())
    ON CONFLICT (org_id, instrument_key, rater) DO UPDATE SET status = 'fitted', intercept = 8.0, intake = 0.8,
      log_t = 1.5, intake_log_t = -0.01, residual_sd = 4.0, fitted_at = now()" >/dev/null
  points=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/patients/p-1/trends?instrument=wai-sr" \
    | grep -o '"on_track"' | wc -l)
  echo "with the expected-response model in force (p-1: $points values with on_track):"
  echo "| measure (c=$CONCURRENCY, ${DURATION}s) | rapport p50 | rapport p99 |"
  echo "|---|---|---|"
  for kind in 5 200; do
    script=$([ "$kind" = 5 ] && echo trends.lua || echo long.lua)
    wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --latency -s "$OUT/$script" "http://127.0.0.1:$PORT" >"$OUT/wrk-model-$kind.txt"
    r50=$(wrk_pct "$OUT/wrk-model-$kind.txt" 50%); r99=$(wrk_pct "$OUT/wrk-model-$kind.txt" 99%)
    echo "| trends with the model, $kind-point patients | $r50 | $r99 |"
    grep -E "Non-2xx" "$OUT/wrk-model-$kind.txt" || true
  done
fi

for path in "/v1/clinicians/dr-7/summary?instrument=wai-sr" "/v1/clinicians?instrument=wai-sr"; do
  t=$(curl -fs -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path")
  echo "| GET $path | ${t} s |"
done
