#!/usr/bin/env bash
# Export benchmark: rows per second and the server's peak RSS while exporting N responses
# as NDJSON and CSV (pseudonymised). Rows are generated straight into a fresh database with
# generate_series; rapport (release) streams them. Loopback only; stops by itself.
#
#   scripts/export-bench.sh            # 100,000 and 1,000,000 rows
#   SIZES="100000" scripts/export-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100000 1000000"}
PORT=${PORT:-18182}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB="rapport_export_$$"

cargo build --release --locked --bin rapport >/dev/null
BIN=${CARGO_TARGET_DIR:-target}/release/rapport
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

DATABASE_URL="$PGURL/$DB?sslmode=disable" RAPPORT_RATE_LIMIT_PER_MINUTE=1000000000 RAPPORT_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  RAPPORT_BOOTSTRAP_CLIENT_ID=bench RAPPORT_BOOTSTRAP_CLIENT_SECRET=bench-secret "$BIN" serve >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(curl -fs -u bench:bench-secret -d grant_type=client_credentials "http://127.0.0.1:$PORT/v1/oauth/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
ORG=$(psql -qtA "$PGURL/$DB" -c "SELECT id FROM organizations LIMIT 1")

echo "| rows | format | seconds | rows/s | peak RSS (MB) |"
echo "|---|---|---|---|---|"
have=0
for n in $SIZES; do
  if [ "$n" -gt "$have" ]; then
    psql -q "$PGURL/$DB" -c "INSERT INTO responses (org_id, id, instrument_key, instrument_version, patient, clinician,
        rater, administered_at, session, answers, payload_hash, source, created_by, total, mean, pomp, subscales,
        answered, missing, prorated, flags)
      SELECT '$ORG', gen_random_uuid(), 'wai-sr', 1, 'p-' || (g % 20000), 'dr-' || (g % 100), 'patient',
        now() - (g || ' minutes')::interval, 1 + g % 12,
        '{\"1\":4,\"2\":5,\"3\":3,\"4\":4,\"5\":5,\"6\":4,\"7\":3,\"8\":4,\"9\":5,\"10\":4,\"11\":3,\"12\":4}'::jsonb,
        '\\x00'::bytea, 'api', 'bench', 48, 4, 75,
        '{\"task\":{\"total\":16,\"mean\":4},\"goal\":{\"total\":16,\"mean\":4},\"bond\":{\"total\":16,\"mean\":4}}'::jsonb,
        12, 0, false, '{}'::text[]
      FROM generate_series($have + 1, $n) AS g" >/dev/null
    psql -q "$PGURL/$DB" -c "VACUUM ANALYZE responses" -c "CHECKPOINT" >/dev/null
    have=$n
  fi
  for format in ndjson csv; do
    # Restart-free peak: reset the high-water mark by reading it before and after.
    before=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
    start=$(date +%s.%N)
    curl -fs -H "Authorization: Bearer $TOKEN" -o /dev/null \
      "http://127.0.0.1:$PORT/v1/exports/responses?instrument=wai-sr&format=$format"
    end=$(date +%s.%N)
    peak=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
    awk -v n="$n" -v f="$format" -v s="$start" -v e="$end" -v p="$peak" -v b="$before" \
      'BEGIN {printf "| %d | %s | %.1f | %.0f | %.1f (before: %.1f) |\n", n, f, e - s, n / (e - s), p / 1024, b / 1024}'
  done
done
