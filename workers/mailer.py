"""Outgoing mail through SMTP_URL: plain SMTP, STARTTLS or implicit TLS, with or without login.

The password lives only in `SmtpServer.password` (a SecretStr): it never reaches a log line, an exception
or the database. Failures come out as one of two errors, so callers know whether to try again.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

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
