"""Standard Webhooks signing, checked against the `standardwebhooks` library: keys, signatures, bodies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from workers.notifications.senders import event_body, public_address, signature, signing_key

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes length").decode()


def test_signature_matches_the_library() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    expected = Webhook(SECRET).sign("msg_4", when, '{"a":1}')
    assert signature(signing_key(SECRET), "msg_4", int(when.timestamp()), b'{"a":1}') == expected


def test_an_unpadded_whsec_secret_is_accepted() -> None:
    assert signing_key(SECRET.rstrip("=")) == signing_key(SECRET) == b"a test secret of 32 bytes length"


def test_public_address_drops_credentials_and_query() -> None:
    assert (
        public_address("https://u:p@hooks.example.com:8443/in?token=x#f")
        == "https://hooks.example.com:8443/in"
    )


def test_event_body_is_compact_json() -> None:
    body = event_body("session.amended", {"name": "Zoë"}, datetime(2024, 5, 1, tzinfo=UTC))
    assert json.loads(body) == {
        "type": "session.amended",
        "timestamp": "2024-05-01T00:00:00.000Z",
        "data": {"name": "Zoë"},
    }
    assert b" " not in body
