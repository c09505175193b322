"""Notifications: how one leaves Rollcall, as mail through SMTP_URL or as a signed webhook POST.

Mail goes over plain SMTP, STARTTLS or implicit TLS, with or without login; the password lives only in
`SmtpServer.password` (a SecretStr): it never reaches a log line, an exception or the database. Webhook
events are signed per the Standard Webhooks spec (standardwebhooks.com). Each way fails with one of two
errors, transient or permanent, so callers know whether to try again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from pydantic import SecretStr

from workers.timefmt import iso_ms

Security = Literal["plain", "starttls", "tls"]
DEFAULT_PORTS: dict[Security, int] = {"plain": 25, "starttls": 587, "tls": 465}
TRUE_WORDS = {"1", "true", "yes", "on"}


class TransientMailError(Exception):
    """The server could not take the message now (4xx, connection or TLS trouble): try again later."""


class PermanentMailError(Exception):
    """The server refused the message for good (5xx) or the setup cannot work: do not try again."""


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to hand mail over."""

    host: str
    port: int
    security: Security
    username: str | None
    password: SecretStr | None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpServer:
    """Read `smtp://user:pass@host:587?starttls=1` or `smtps://…`; raise ValueError without echoing it."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL: must look like smtp://[user:pass@]host[:port][?starttls=1] or smtps://…")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL: the port is not a number") from None
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[-1].lower() in TRUE_WORDS
    security: Security = "tls" if parts.scheme == "smtps" else "starttls" if starttls else "plain"
    password = SecretStr(unquote(parts.password)) if parts.password is not None else None
    return SmtpServer(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[security],
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=password,
    )


def send_mail(server: SmtpServer, message: EmailMessage, timeout: float = 30.0) -> None:
    """Hand `message` to the server, raising TransientMailError or PermanentMailError on failure."""
    try:
        smtp = _connect(server, timeout)
        try:
            if server.username is not None:
                password = server.password.get_secret_value() if server.password else ""
                smtp.login(server.username, password)
            smtp.send_message(message)
        finally:
            _quit_quietly(smtp)
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = next(iter(error.recipients.values()))
        raise _by_code(server, code, reply) from None
    except smtplib.SMTPResponseException as error:
        raise _by_code(server, error.smtp_code, error.smtp_error) from None
    except smtplib.SMTPNotSupportedError as error:
        raise PermanentMailError(f"SMTP server {server}: {error}") from None
    except (smtplib.SMTPException, OSError) as error:
        # Disconnects, refused connections, timeouts and TLS failures: the next attempt may well work.
        raise TransientMailError(f"SMTP server {server}: {type(error).__name__}: {error}") from None


def _connect(server: SmtpServer, timeout: float) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if server.security == "tls":
        return smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
    if server.security == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    # Once the message is accepted, a failed QUIT must not turn into an error that causes a resend.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _by_code(server: SmtpServer, code: int, reply: bytes | str) -> Exception:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    reason = f"SMTP server {server} answered {code} {text}".strip()
    if 500 <= code < 600:
        return PermanentMailError(reason)
    return TransientMailError(reason)


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
