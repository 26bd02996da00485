#!/usr/bin/env python3
"""Verifies the webhook messages rapport's tests received with the official Standard
Webhooks library (`standardwebhooks` from PyPI): rapport's own verifier is not the judge.

    scripts/verify-webhooks.py DIR     # DIR: $CARGO_TARGET_DIR/tmp/webhook-captures

Each capture holds the headers and body a test receiver got, the secrets the message must
verify under (two during a secret rotation: each one alone must verify), and when it was
received: the library's clock is pinned to that moment, so its 5-minute tolerance judges
the message as a receiver did then, however long the rest of the test run took.
"""
import datetime as dt
import json
import pathlib
import sys

import standardwebhooks.webhooks as swh
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def pinned_clock(at: float):
    class Pinned(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.fromtimestamp(at, tz=tz)

    return Pinned


def must_fail(wh: Webhook, body: str, headers: dict, what: str) -> None:
    try:
        wh.verify(body, headers)
    except WebhookVerificationError:
        return
    raise SystemExit(f"{what} verified, but must not")


def main() -> None:
    directory = pathlib.Path(sys.argv[1])
    captures = sorted(directory.glob("*.json"))
    if not captures:
        raise SystemExit(f"no webhook captures in {directory}: did the webhook tests run?")
    checked = 0
    for path in captures:
        capture = json.loads(path.read_text())
        body, headers = capture["body"], capture["headers"]
        swh.datetime = pinned_clock(capture["received_at"])
        for secret in capture["secrets"]:
            wh = Webhook(secret)
            message = wh.verify(body, headers)
            assert message["type"] and message["timestamp"] and "data" in message, path
            checked += 1
            must_fail(wh, body.replace("}", " }", 1), headers, f"{path.name}: a changed body")
            must_fail(wh, body, {**headers, "webhook-signature": "v1,"}, f"{path.name}: an empty signature")
            truncated = headers["webhook-signature"].split(" ")[0][:-8]
            must_fail(wh, body, {**headers, "webhook-signature": truncated}, f"{path.name}: a truncated signature")
            later = str(int(headers["webhook-timestamp"]) + 1)
            must_fail(wh, body, {**headers, "webhook-timestamp": later}, f"{path.name}: another timestamp")
    print(f"standardwebhooks verified {checked} signatures over {len(captures)} captured messages")


if __name__ == "__main__":
    main()
