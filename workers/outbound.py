"""Signed notifications to other systems, per the Standard Webhooks spec (standardwebhooks.com)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from workers.timefmt import iso_ms

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of the secret format, not a secret
# 408 and 429 say "not now" rather than "never"; every other 4xx is a problem retrying will not fix.
RETRYABLE_4XX = {408, 429}


class TransientWebhookError(Exception):
    """The receiver could not take the event now (5xx, timeout, connection trouble): try again later."""


class PermanentWebhookError(Exception):
    """The receiver refused the event (4xx, a redirect): do not try again."""


def signing_key(secret: str) -> bytes:
    """Return the HMAC key of a `whsec_<base64>` secret, or of a raw secret; ValueError if it is unusable."""
    key = secret.encode()
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:  # Standard Webhooks secrets are sometimes written without their base64 padding
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError(f"not base64 after {SECRET_PREFIX}") from None
    if not key:
        raise ValueError("the signing key is empty")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` value: v1 and the base64 HMAC-SHA256 of id.timestamp.body."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Return the Standard Webhooks headers for one attempt at sending `body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }


def event_body(event_type: str, data: dict[str, Any], at: datetime) -> bytes:
    """Return the JSON body of an event: its type, when it happened, and its data."""
    event = {"type": event_type, "timestamp": iso_ms(at), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def post_event(url: str, key: bytes, message_id: str, body: bytes, timeout: float = 15.0) -> None:
    """POST a signed event; raise TransientWebhookError or PermanentWebhookError unless it got a 2xx."""
    headers = signed_headers(key, message_id, body)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise PermanentWebhookError(f"{public_address(url)}: not a usable http(s) URL") from None
    except httpx.TransportError as error:
        raise TransientWebhookError(f"{public_address(url)}: {type(error).__name__}: {error}") from None
    if response.is_success:
        return
    reason = f"{public_address(url)} answered {response.status_code} {response.text[:200]}".strip()
    if response.status_code >= 500 or response.status_code in RETRYABLE_4XX:
        raise TransientWebhookError(reason)
    raise PermanentWebhookError(reason)


def public_address(url: str) -> str:
    """Return `url` without credentials, query or fragment: safe to show and to store."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"
