"""Standard Webhooks signing and delivery, checked by the `standardwebhooks` library over real HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.wrappers import Request, Response

from tests.servers import free_port, serving
from workers.notifications.senders import (
    PermanentWebhookError,
    TransientWebhookError,
    event_body,
    post_event,
    public_address,
    signature,
    signing_key,
)

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes length").decode()


@dataclass
class Receiver:
    """A receiver that verifies each delivery with `standardwebhooks`; `answers` are statuses sent first."""

    secret: str | bytes
    answers: list[int] = field(default_factory=list)
    attempts: list[dict[str, str]] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response = self.answer(Request(environ))
        return response(environ, start_response)

    def answer(self, request: Request) -> Response:
        """Verify one delivery and record it, unless a status from `answers` comes first."""
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.attempts.append(headers)
        if self.answers:
            return Response("not now", status=self.answers.pop(0))
        try:
            event = Webhook(self.secret).verify(request.get_data(), headers)
        except WebhookVerificationError as error:
            return Response(str(error), status=400)
        self.events.append((headers["webhook-id"], event))
        return Response(status=204)


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    """Serve `receiver` on loopback and yield its URL."""
    with serving(receiver) as base_url:
        yield f"{base_url}/hooks/rollcall"


def test_the_library_verifies_our_signature() -> None:
    receiver = Receiver(SECRET)
    body = event_body("session.finalized", {"meetingSessionId": "ms-1"}, datetime(2024, 5, 1, tzinfo=UTC))
    with receiving(receiver) as url:
        post_event(url, signing_key(SECRET), "msg_1", body)
    [(message_id, event)] = receiver.events
    assert message_id == "msg_1"
    assert event == {
        "type": "session.finalized",
        "timestamp": "2024-05-01T00:00:00.000Z",
        "data": {"meetingSessionId": "ms-1"},
    }


def test_a_raw_secret_is_used_as_it_is() -> None:
    receiver = Receiver(b"not-base64 raw secret")
    with receiving(receiver) as url:
        post_event(url, signing_key("not-base64 raw secret"), "msg_2", b'{"type":"x"}')
    assert len(receiver.events) == 1


def test_a_wrong_secret_fails_verification() -> None:
    receiver = Receiver(SECRET)
    with receiving(receiver) as url, pytest.raises(PermanentWebhookError, match="400"):
        post_event(url, signing_key("whsec_" + base64.b64encode(b"another").decode()), "msg_3", b"{}")


def test_signature_matches_the_library() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    expected = Webhook(SECRET).sign("msg_4", when, '{"a":1}')
    assert signature(signing_key(SECRET), "msg_4", int(when.timestamp()), b'{"a":1}') == expected


def test_an_unpadded_whsec_secret_is_accepted() -> None:
    assert signing_key(SECRET.rstrip("=")) == signing_key(SECRET) == b"a test secret of 32 bytes length"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientWebhookError),
        (503, TransientWebhookError),
        (429, TransientWebhookError),
        (410, PermanentWebhookError),
        (400, PermanentWebhookError),
        (302, PermanentWebhookError),
    ],
)
def test_failures_are_transient_or_permanent(status: int, error: type[Exception]) -> None:
    receiver = Receiver(SECRET, answers=[status])
    with receiving(receiver) as url, pytest.raises(error, match=str(status)):
        post_event(url, signing_key(SECRET), "msg_5", b"{}")


def test_a_refused_connection_is_transient_and_the_query_never_shown() -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}/hook?token=s3cret"
    with pytest.raises(TransientWebhookError) as caught:
        post_event(url, signing_key(SECRET), "msg_6", b"{}", timeout=5)
    assert "s3cret" not in str(caught.value) and "pw" not in str(caught.value)


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
