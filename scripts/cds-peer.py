#!/usr/bin/env python3
"""A CDS client that is not rapport's code: it signs its JWTs with PyJWT and judges rapport's
answers with the CDS Hooks models of `healthchain` (PyPI).

What healthchain's models enforce (pydantic, v0.16): the discovery document's services have `id`,
`hook` and `description`; a card has `summary` of at most 140 characters, `indicator` in
info/warning/critical, a `source` with a `label` (and `url`, when given, a valid URL), links of type
absolute/smart with a valid URL (and `appContext` only on smart links), `selectionBehavior` whenever
`suggestions` exist; feedback items have `card`, `outcome` in accepted/overridden and
`outcomeTimestamp` (its feedback model spells the reason `overriddeReason`, so the script sends the
SPEC's `overrideReason` itself). The requests this client sends are built with its hook-context models
(patient-view, order-select, order-sign; dumped with `serialize_as_any`, else pydantic drops the
hook's own context fields), so they are CDS Hooks requests by healthchain's reading.
The client names an EHR connection, so every card carries the "Open in rapport" smart link
(`autoLaunchable` false: healthchain requires the field) whose appContext names the patient.
What the models do not check, this script does: fewer than 140 characters, a uuid per card, no
suggestions or systemActions, most severe first, the medication rules, one use per `jti`.

Usage: cds-peer.py BASE_URL ADMIN_TOKEN
"""
import importlib.metadata
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from healthchain.models.hooks.orderselect import OrderSelectContext
from healthchain.models.hooks.ordersign import OrderSignContext
from healthchain.models.hooks.patientview import PatientViewContext
from healthchain.models.requests.cdsrequest import CDSRequest
from healthchain.models.responses.cdsdiscovery import CDSServiceInformation
from healthchain.models.responses.cdsfeedback import CDSFeedback
from healthchain.models.responses.cdsresponse import CDSResponse

BASE, ADMIN = sys.argv[1].rstrip("/"), sys.argv[2]
ISSUER = f"https://peer-ehr-{uuid.uuid4().hex[:8]}.example"
KEY = ec.generate_private_key(ec.SECP384R1())
PUBLIC = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
PUBLIC.update({"kid": "peer-1", "use": "sig", "alg": "ES384"})


def http(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def signed(path, jti=None):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": ISSUER, "aud": BASE + path, "iat": now, "exp": now + 120,
              "jti": jti or str(uuid.uuid4())}
    return jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": "peer-1"})


def check(condition, what):
    if not condition:
        sys.exit(f"cds-peer: {what}")


def call(service, request, jti=None):
    path = f"/cds-services/{service}"
    status, body = http("POST", path, json.loads(request.model_dump_json(exclude_none=True, serialize_as_any=True)), signed(path, jti))
    check(status == 200, f"{service} answered {status}: {body}")
    answer = CDSResponse.model_validate(body)  # healthchain's judgement of the card shapes
    for card in body["cards"]:
        check(len(card["summary"]) < 140, f"summary of 140 or more characters: {card['summary']}")
        uuid.UUID(card["uuid"])
        check("suggestions" not in card and "systemActions" not in body, "no suggestions, no system actions")
    return answer, body["cards"]


def main():
    status, discovery = http("GET", "/cds-services")
    check(status == 200, f"discovery answered {status}")
    services = CDSServiceInformation.model_validate(discovery).services
    check({(s.id, s.hook) for s in services} == {("rapport-alliance", "patient-view"),
                                                 ("rapport-prescribing", "order-select"),
                                                 ("rapport-prescribing-sign", "order-sign")}, "three services")

    # The client names an EHR connection (SMART App Launch), so its cards carry the smart link.
    status, connection = http("POST", "/v1/ehr-connections", {
        "issuer": f"https://ehr-{uuid.uuid4().hex[:8]}.peer.example/fhir", "client_id": "rapport",
        "client_auth": "client_secret_basic", "client_secret": "peer-secret"}, ADMIN)
    check(status == 201, f"registering the EHR connection answered {status}: {connection}")
    status, client = http("POST", "/v1/cds-clients", {"issuer": ISSUER, "jwks": {"keys": [PUBLIC]},
                                                     "ehr_connection_id": connection["id"]}, ADMIN)
    check(status == 201, f"registering the CDS client answered {status}: {client}")

    patient = f"peer-{uuid.uuid4().hex[:8]}"
    recent = lambda days: (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
    for days, total in [(30, 48), (20, 48), (10, 48), (2, 12)]:
        base, extra = divmod(total, 12)
        answers = {str(i): base + (1 if i <= extra else 0) for i in range(1, 13)}
        status, _ = http("POST", "/v1/responses", {"instrument": "wai-sr", "patient": patient,
                                                  "administered_at": recent(days), "answers": answers}, ADMIN)
        check(status == 201, f"posting a WAI-SR answered {status}")
    phq = {str(i): 1 for i in range(1, 9)}
    phq["9"] = 2
    status, _ = http("POST", "/v1/responses", {"instrument": "phq-9", "patient": patient,
                                              "administered_at": recent(1), "answers": phq}, ADMIN)
    check(status == 201, f"posting a PHQ-9 answered {status}")
    for _ in range(100):  # the alerts are raised after the commit
        status, page = http("GET", f"/v1/alerts?patient={patient}", token=ADMIN)
        if len(page.get("items", [])) == 2:
            break
        time.sleep(0.1)
    check(len(page["items"]) == 2, f"two open alerts expected: {page}")

    view = CDSRequest(hook="patient-view", context=PatientViewContext(userId="Practitioner/peer", patientId=patient))
    _, cards = call("rapport-alliance", view)
    check([c["indicator"] for c in cards] == ["critical", "warning"], f"safety flag, then rupture: {cards}")
    for card in cards:
        (link,) = card["links"]
        check(link["type"] == "smart" and link["url"] == f"{BASE}/launch", f"the smart link: {link}")
        check(json.loads(link["appContext"])["patient"] == patient, f"the link's appContext: {link}")

    # One use per jti.
    jti = str(uuid.uuid4())
    call("rapport-alliance", view, jti)
    path = "/cds-services/rapport-alliance"
    status, _ = http("POST", path, json.loads(view.model_dump_json(exclude_none=True, serialize_as_any=True)), signed(path, jti))
    check(status == 401, f"a replayed jti answered {status}")

    orders = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order"}},
        {"resource": {"resourceType": "ServiceRequest", "id": "s1", "status": "draft", "intent": "order"}}]}
    select = CDSRequest(hook="order-select", context=OrderSelectContext(
        userId="Practitioner/peer", patientId=patient, selections=["MedicationRequest/m1"], draftOrders=orders))
    _, rx = call("rapport-prescribing", select)
    check([c["indicator"] for c in rx] == ["critical", "warning"], f"flag, then the alliance card: {rx}")
    check("rupture open" in rx[1]["summary"] and "9.1%" in rx[1]["detail"], f"the alliance card: {rx[1]}")
    unselected = CDSRequest(hook="order-select", context=OrderSelectContext(
        userId="Practitioner/peer", patientId=patient, selections=["ServiceRequest/s1"], draftOrders=orders))
    _, none = call("rapport-prescribing", unselected)
    check(none == [], "no card when the selected order is not a medication")
    sign = CDSRequest(hook="order-sign", context=OrderSignContext(
        userId="Practitioner/peer", patientId=patient, draftOrders=orders))
    _, signed_cards = call("rapport-prescribing-sign", sign)
    check(len(signed_cards) == 2, "order-sign sees every draft order")

    item = CDSFeedback(card=cards[0]["uuid"], outcome="overridden",
                       outcomeTimestamp=datetime.now(timezone.utc).isoformat())
    feedback = json.loads(item.model_dump_json(exclude_none=True))
    feedback["overrideReason"] = {"reason": {"code": "already-addressed", "system": "https://peer.example/reasons"},
                                  "userComment": "addressed in session"}
    path = "/cds-services/rapport-alliance/feedback"
    status, body = http("POST", path, {"feedback": [feedback]}, signed(path))
    check(status == 200 and body == {}, f"feedback answered {status}: {body}")
    flag = next(a for a in page["items"] if a["kind"] == "item_flag")
    status, alert = http("GET", f"/v1/alerts/{flag['id']}", token=ADMIN)
    check(status == 200 and [f["outcome"] for f in alert["cds_feedback"]] == ["overridden"],
          f"the alert shows the feedback: {alert}")
    print(f"healthchain {importlib.metadata.version('healthchain')} models and PyJWT {jwt.__version__}: discovery, "
          f"{len(cards) + len(rx) + len(signed_cards)} cards and feedback judged valid; a replayed jti was refused")


main()
