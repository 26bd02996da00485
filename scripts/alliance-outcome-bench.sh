#!/usr/bin/env bash
# Alliance-outcome benchmark: GET /v1/alliance-outcome over 20,000 courses (100,000
# responses: per course a PHQ-9 at sessions 1, 3 and 8, a WAI-SR at sessions 3 and 6) of 200
# clinicians, generated straight into a fresh database. Prints p50/p90/max of 30 sequential
# requests (release build) and the server's peak RSS. Loopback only; stops by itself.
#
#   scripts/alliance-outcome-bench.sh
#   REQUESTS=50 scripts/alliance-outcome-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-30}
PORT=${PORT:-18185}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB="rapport_ao_$$"
OUT=${OUT:-/tmp/rapport-ao-$$}
mkdir -p "$OUT"

cargo build --release --locked --bin rapport >/dev/null 2>&1
BIN=${CARGO_TARGET_DIR:-target}/release/rapport
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

DATABASE_URL="$PGURL/$DB?sslmode=disable" RAPPORT_RATE_LIMIT_PER_MINUTE=1000000000 RAPPORT_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  RAPPORT_BOOTSTRAP_CLIENT_ID=bench RAPPORT_BOOTSTRAP_CLIENT_SECRET=bench-secret "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(curl -fs -u bench:bench-secret -d grant_type=client_credentials "http://127.0.0.1:$PORT/v1/oauth/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
ORG=$(psql -qtA "$PGURL/$DB" -c "SELECT id FROM organizations LIMIT 1")

echo "== generating 20,000 courses (100,000 responses, 200 clinicians)"
psql -q "$PGURL/$DB" -c "INSERT INTO responses (org_id, id, instrument_key, instrument_version, patient, clinician,
    rater, administered_at, session, answers, payload_hash, source, created_by, total, mean, pomp, answered, missing,
    prorated, flags)
  SELECT '$ORG', gen_random_uuid(), v.key, 1, 'p-' || c, 'dr-' || (c % 200), 'patient',
    timestamptz '2025-01-01' + ((c % 300) || ' days')::interval + (v.session || ' weeks')::interval, v.session,
    '{}'::jsonb, '\\x00'::bytea, 'api', 'bench', v.t, v.t / 12.0, 50, 12, 0, false, '{}'::text[]
  FROM generate_series(1, 20000) AS c,
    LATERAL (VALUES
      ('phq-9', 1, (12 + (c * 7) % 14)::float8),
      ('phq-9', 3, (10 + (c * 5) % 13)::float8),
      ('phq-9', 8, (3 + (c * 11) % 17)::float8),
      ('wai-sr', 3, (30 + (c * 13) % 29)::float8),
      ('wai-sr', 6, (32 + (c * 3) % 27)::float8)) AS v(key, session, t)" >/dev/null
psql -q "$PGURL/$DB" -c "VACUUM ANALYZE responses" >/dev/null

URL="http://127.0.0.1:$PORT/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3"
curl -fs -H "Authorization: Bearer $TOKEN" "$URL" >"$OUT/answer.json"
echo "courses: $(grep -o '"n":[0-9]*' "$OUT/answer.json" | head -1)"
for _ in $(seq 1 "$REQUESTS"); do
  curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$URL"
done | sort -n >"$OUT/times.txt"
awk '{a[NR]=$1} END {printf "| alliance-outcome, 20,000 courses | p50 %.0f ms | p90 %.0f ms | max %.0f ms | (%d requests) |\n",
  a[int(NR*0.5)]*1000, a[int(NR*0.9)]*1000, a[NR]*1000, NR}' "$OUT/times.txt"
echo "server peak RSS: $(grep VmHWM /proc/$PID/status | awk '{print $2/1024 " MB"}')"
