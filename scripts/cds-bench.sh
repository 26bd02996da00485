#!/usr/bin/env bash
# CDS Hooks benchmark: `patient-view` (rapport-alliance) p50/p99 at concurrency 8 over
# 1,000,000 stored responses (200,000 patients x 5 WAI-SR points), 10,000 of the patients with
# three open alerts each (a safety flag, a rupture, a score below the cut-off: three cards) and
# the rest with none. Every call carries a fresh ES384 JWT (its own `jti`, checked and kept in
# Postgres), signed beforehand by PyJWT so that signing is not measured; rapport verifies it,
# reads the alerts, keeps the issued cards and commits the call's audit event before answering.
# Rows are generated straight into a fresh database. Loopback only; stops by itself.
#
#   scripts/cds-bench.sh              # 15 s per phase
#   DURATION=10 scripts/cds-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-8}
PORT=${PORT:-18188}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB="rapport_cds_$$"
OUT=${OUT:-/tmp/rapport-cds-$$}
mkdir -p "$OUT"
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }
VENV="${TMPDIR:-/tmp}/rapport-cds-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pyjwt[crypto]>=2.8,<3"
fi

cargo build --release --locked --bin rapport >/dev/null 2>&1
BIN=${CARGO_TARGET_DIR:-target}/release/rapport
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q "$PGURL/postgres" -c "CREATE DATABASE \"$DB\"" >/dev/null

BASE="http://127.0.0.1:$PORT"
DATABASE_URL="$PGURL/$DB?sslmode=disable" RAPPORT_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  RAPPORT_BOOTSTRAP_CLIENT_ID=bench RAPPORT_BOOTSTRAP_CLIENT_SECRET=bench-secret "$BIN" serve >"$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(curl -fs -u bench:bench-secret -d grant_type=client_credentials "$BASE/v1/oauth/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
ORG=$(psql -qtA "$PGURL/$DB" -c "SELECT id FROM organizations LIMIT 1")

echo "== generating 1,000,000 responses and 30,000 open alerts"
psql -q "$PGURL/$DB" -c "INSERT INTO responses (org_id, id, instrument_key, instrument_version, patient, clinician,
    rater, administered_at, session, answers, payload_hash, source, created_by, total, mean, pomp, answered, missing,
    prorated, flags)
  SELECT '$ORG', gen_random_uuid(), 'wai-sr', 1, 'p-' || p, 'dr-' || (p % 2000), 'patient',
    now() - ((6 - s) * 7 || ' days')::interval, s, '{}'::jsonb, '\\x00'::bytea, 'api', 'bench',
    t, t / 12.0, (t - 12) / 0.48, 12, 0, false, '{}'::text[]
  FROM generate_series(0, 199999) AS p, generate_series(1, 5) AS s,
    LATERAL (SELECT (30 + (p * 7 + s * 13) % 25)::float8 AS t) AS v" >/dev/null
psql -q "$PGURL/$DB" -c "INSERT INTO alerts (org_id, id, kind, patient, clinician, instrument_key, instrument_version,
    rater, response_id, fingerprint, detail)
  SELECT '$ORG', gen_random_uuid(), k.kind, 'p-' || p, 'dr-1', k.instrument, 1, 'patient', gen_random_uuid(),
    k.kind || ':bench:' || p, k.detail::jsonb
  FROM generate_series(0, 9999) AS p, (VALUES
    ('item_flag', 'phq-9', '{\"flag\": \"item_9_positive\", \"item\": \"9\", \"answer\": 2}'),
    ('rupture', 'wai-sr', '{\"from\": 48, \"to\": 30, \"drop\": 18, \"rule\": \"reliable_drop\"}'),
    ('below_cutoff', 'srs', '{\"total\": 30, \"cutoff\": 36, \"comparator\": \"lt\"}')) AS k(kind, instrument, detail)" >/dev/null
psql -q "$PGURL/$DB" -c "VACUUM ANALYZE responses" -c "VACUUM ANALYZE alerts" -c "CHECKPOINT" >/dev/null

echo "== registering the CDS client and signing its JWTs"
"$VENV/bin/python" - "$BASE" "$TOKEN" "$OUT" <<'PY'
import json, sys, time, urllib.request, uuid
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
base, admin, out = sys.argv[1:4]
key = ec.generate_private_key(ec.SECP384R1())
public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
public["kid"] = "bench"
req = urllib.request.Request(base + "/v1/cds-clients", method="POST",
    data=json.dumps({"issuer": "https://bench-ehr.example", "jwks": {"keys": [public]}}).encode(),
    headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
urllib.request.urlopen(req).read()
now = int(time.time())
with open(f"{out}/tokens.txt", "w") as f:
    for _ in range(80_000):
        claims = {"iss": "https://bench-ehr.example", "aud": base + "/cds-services/rapport-alliance",
                  "iat": now, "exp": now + 290, "jti": str(uuid.uuid4())}
        f.write(jwt.encode(claims, key, algorithm="ES384", headers={"kid": "bench"}) + "\n")
PY

# Each wrk thread takes its own half of the tokens, one per request, in order.
cat >"$OUT/view.lua" <<LUA
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  local i = 0
  for line in io.lines("$OUT/tokens.txt") do
    if i % 2 == tid then tokens[#tokens + 1] = line end
    i = i + 1
  end
  next_token = 1
  math.randomseed(os.time() + tid)
end
function request()
  local token = tokens[next_token]
  next_token = next_token + 1
  local patient = "p-" .. math.random(0, 19999)
  local body = '{"hook": "patient-view", "hookInstance": "bench", "context": {"userId": "Practitioner/dr-1", "patientId": "' .. patient .. '"}}'
  return wrk.format("POST", "/cds-services/rapport-alliance",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
LUA
wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --latency -s "$OUT/view.lua" "$BASE" >"$OUT/wrk.txt"
cat "$OUT/wrk.txt"
cards=$(psql -qtA "$PGURL/$DB" -c "SELECT count(*) FROM cds_cards")
calls=$(psql -qtA "$PGURL/$DB" -c "SELECT count(*) FROM audit_events WHERE action = 'cds.call'")
echo "calls audited: $calls; cards kept: $cards (half the patients called have three open alerts)"
