#!/usr/bin/env bash
# Posts a small generated clinic (40 treatment courses, 5 clinicians: a PHQ-9 before and at
# session 3, a WAI-SR at session 3, a PHQ-9 at session 8) through POST /v1/responses/batch,
# then asks GET /v1/alliance-outcome. Needs a running rapport and a token with
# responses:write and analytics:read (or responses:read).
#
#   TOKEN=... scripts/alliance-outcome-demo.sh [http://127.0.0.1:8080]
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
: "${TOKEN:?set TOKEN to a bearer token}"
python3 - <<'PY' >/tmp/rapport-demo-batch.json
import json, random
random.seed(42)
def answers(total, items, lo, hi):
    # spread a total over the items, each within lo..hi
    values = [lo] * items
    left = total - lo * items
    for i in range(items):
        step = min(hi - lo, left)
        values[i] += step
        left -= step
    return {str(i + 1): v for i, v in enumerate(values)}
responses = []
for c in range(40):
    patient, clinician = f"demo-{c}", f"dr-{c % 5}"
    alliance = random.randint(30, 58)
    baseline = random.randint(12, 24)
    at_three = max(0, baseline - random.randint(0, 5))
    end = max(0, at_three - round((alliance - 30) / 4) - random.randint(-3, 4))
    def post(key, total, session, day, items, lo, hi):
        responses.append({"instrument": key, "patient": patient, "clinician": clinician, "session": session,
                          "administered_at": f"2026-0{1 + day // 28}-{1 + day % 28:02d}T10:00:00Z",
                          "answers": answers(total, items, lo, hi)})
    post("phq-9", baseline, 1, 0, 9, 0, 3)
    post("phq-9", at_three, 3, 14, 9, 0, 3)
    post("wai-sr", alliance, 3, 14, 12, 1, 5)
    post("phq-9", end, 8, 49, 9, 0, 3)
print(json.dumps({"responses": responses}))
PY
curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  --data-binary @/tmp/rapport-demo-batch.json "$BASE/v1/responses/batch" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"]; print({s: sum(x["status"]==s for x in r) for s in {x["status"] for x in r}})'
curl -fs -H "Authorization: Bearer $TOKEN" \
  "$BASE/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3"
echo
