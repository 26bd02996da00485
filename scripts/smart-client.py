#!/usr/bin/env python3
"""SMART Backend Services peer: a client made with PyJWT + cryptography (PyPI), not rapport's
own signer. Registers a key-pair client through the API, signs an RS384 client assertion,
exchanges it for a token and reads /fhir/r4/Observation with it. Exits non-zero on any
failure.

    python scripts/smart-client.py http://127.0.0.1:8080 "$ADMIN_TOKEN"
"""
import base64, json, sys, time, urllib.error, urllib.parse, urllib.request, uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def call(method, url, token=None, body=None, form=None):
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main(base: str, admin: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    public = {"kty": "RSA", "kid": "peer-1", "use": "sig", "alg": "RS384", "n": b64(numbers.n), "e": b64(numbers.e)}
    status, client = call("POST", f"{base}/v1/clients", admin,
                          {"name": "pyjwt-peer", "scopes": ["responses:read"], "jwks": {"keys": [public]}})
    assert status == 201, (status, client)
    assert client["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in client, client

    status, conf = call("GET", f"{base}/.well-known/smart-configuration")
    assert status == 200, (status, conf)
    token_url = conf["token_endpoint"]
    now = int(time.time())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assertion = jwt.encode(
        {"iss": client["client_id"], "sub": client["client_id"], "aud": token_url,
         "exp": now + 240, "iat": now, "jti": str(uuid.uuid4())},
        pem, algorithm="RS384", headers={"kid": "peer-1"})
    form = {"grant_type": "client_credentials", "scope": "system/Observation.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    status, token = call("POST", token_url, form=form)
    assert status == 200, (status, token)
    assert token["scope"] == "system/Observation.rs" and token["expires_in"] <= 300, token
    # The same assertion again is a replay.
    status, replay = call("POST", token_url, form=form)
    assert status == 401 and replay["error"] == "invalid_client", (status, replay)

    status, bundle = call("GET", f"{base}/fhir/r4/Observation?subject=Patient/p-peer", token["access_token"])
    assert status == 200 and bundle["resourceType"] == "Bundle", (status, bundle)
    print(f"PyJWT {jwt.__version__}: RS384 client assertion exchanged, Observation search answered "
          f"a {bundle['type']} Bundle; the replayed assertion was refused")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2])
