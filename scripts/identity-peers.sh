#!/usr/bin/env bash
# Identity and CDS Hooks checks by independent peers against a running rapport (the debug binary that
# `cargo test` built), on a throwaway database:
# - a SMART Backend Services client made with PyJWT + cryptography (PyPI): registers a key
#   pair, exchanges an RS384 assertion for a token, reads /fhir/r4/Observation;
# - a real OpenID provider, `oidc-provider` (npm), registered as the organisation's
#   identity provider: its client-credentials JWT access token reads a patient's trend, and
#   the `platform:admin` in its scope claim is not honoured;
# - a CDS Hooks client (scripts/cds-peer.py): PyJWT signs its ES384 JWTs, healthchain's CDS
#   Hooks models (PyPI) build its requests and judge rapport's discovery, cards and feedback.
# Python and Node packages are installed under $TMPDIR only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18186}
IDP_PORT=${IDP_PORT:-18187}
DB="rapport_identity_$$"
BIN=${CARGO_TARGET_DIR:-target}/debug/rapport
[ -x "$BIN" ] || cargo build --locked --bin rapport
VENV="${TMPDIR:-/tmp}/rapport-identity-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pyjwt[crypto]>=2.8,<3"
fi
# The CDS Hooks judge: healthchain's CDS Hooks models (PyPI), with PyJWT signing the client's JWTs.
CDS_VENV="${TMPDIR:-/tmp}/rapport-cds-venv"
if [ ! -x "$CDS_VENV/bin/python" ] || ! "$CDS_VENV/bin/python" -c 'import jwt, healthchain.models.responses.cdsresponse' 2>/dev/null; then
  python3 -m venv "$CDS_VENV"
  "$CDS_VENV/bin/pip" install -q "pyjwt[crypto]>=2.8,<3" "healthchain>=0.16,<0.17"
fi
NODE_DIR="${TMPDIR:-/tmp}/rapport-oidc"
if [ ! -d "$NODE_DIR/node_modules/oidc-provider" ]; then
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund -s "oidc-provider@9" >/dev/null)
fi
cp scripts/oidc-peer.mjs "$NODE_DIR/oidc-peer.mjs"

cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  [ -n "${IDP:-}" ] && kill "$IDP" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q "$PGURL/postgres" -c "CREATE DATABASE \"$DB\"" >/dev/null
BASE="http://127.0.0.1:$PORT"
DATABASE_URL="$PGURL/$DB?sslmode=disable" RAPPORT_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  RAPPORT_WEBHOOK_ALLOW_PRIVATE=true RAPPORT_BOOTSTRAP_CLIENT_ID=peer-admin \
  RAPPORT_BOOTSTRAP_CLIENT_SECRET=peer-admin-secret "$BIN" serve >"${TMPDIR:-/tmp}/rapport-identity-peers.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
token() { sed -E 's/.*"access_token":"([^"]+)".*/\1/'; }
ADMIN=$(curl -fs -u peer-admin:peer-admin-secret -d grant_type=client_credentials "$BASE/v1/oauth/token" | token)

"$VENV/bin/python" scripts/smart-client.py "$BASE" "$ADMIN"
"$CDS_VENV/bin/python" scripts/cds-peer.py "$BASE" "$ADMIN"

(cd "$NODE_DIR" && exec node oidc-peer.mjs "$IDP_PORT") >"${TMPDIR:-/tmp}/rapport-oidc-peer.log" 2>&1 &
IDP=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$IDP_PORT/jwks" >/dev/null 2>&1 && break; sleep 0.2; done
ISSUER="http://127.0.0.1:$IDP_PORT"
curl -fs -o /dev/null -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d "{\"issuer\": \"$ISSUER\", \"jwks_uri\": \"$ISSUER/jwks\", \"audience\": \"urn:rapport:api\"}" \
  "$BASE/v1/identity-providers"
curl -fs -o /dev/null -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"instrument": "wai-sr", "patient": "p-peer", "administered_at": "2026-11-02T10:00:00Z",
       "answers": {"1":4,"2":5,"3":3,"4":4,"5":5,"6":4,"7":3,"8":4,"9":5,"10":4,"11":3,"12":4}}' \
  "$BASE/v1/responses"
IDP_TOKEN=$(curl -fs -u dashboard:peer-secret-not-used-elsewhere -d grant_type=client_credentials \
  -d "scope=responses:read platform:admin" -d resource=urn:rapport:api "$ISSUER/token" | token)
points=$(curl -fs -H "Authorization: Bearer $IDP_TOKEN" "$BASE/v1/patients/p-peer/trends?instrument=wai-sr" \
  | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["points"]))')
[ "$points" = 1 ] || { echo "the trend read with the provider's token has $points points" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $IDP_TOKEN" "$BASE/v1/organizations")
[ "$status" = 403 ] || { echo "platform:admin from the provider answered $status, not 403" >&2; exit 1; }
echo "oidc-provider $(node -e "console.log(require('$NODE_DIR/node_modules/oidc-provider/package.json').version)"): its ES384 JWT access token read the trend; platform:admin in its scope claim was refused (403)"
