"""No configured secret, room token or URL credential reaches a log line, however the path is spelled."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.servers import serving
from tests.test_inbox import make_room
from webhooks import runtime_of
from workers.runtime.log_redaction import REDACTED


def hook_spellings(token: str) -> list[str]:
    """Return request targets that all reach (or name) the receiver with `token`, spelled differently."""
    first = f"%{ord(token[0]):02X}"
    every = "".join(f"%{ord(c):02x}" for c in token)
    return [
        f"/hooks/metered/{token}/participant-joined",
        f"//hooks/metered/{token}/participant-joined",
        f"/HOOKS/Metered/{token}/participant-joined",
        f"/hooks/metered/{first}{token[1:]}/participant-joined",
        f"/hooks%2Fmetered/{token}/participant-joined",
        f"/hooks%2fmetered%2F{every}%2Fparticipant-joined",
        f"/%68ooks/metered/{token}/participant-joined",
        f"/hooks/./metered//{token}/participant-joined?x=1",
        f"/hooks/metered/{token}",
    ]


def send_raw(base_url: str, method: str, target: str, body: bytes = b"{}") -> bytes:
    """Send one request with `target` exactly as spelled (no client normalises it); return the answer."""
    parts = urlsplit(base_url)
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def leaked(token: str, text: str) -> bool:
    """Say whether `text` holds the token, or enough of it to matter, in any spelling sent above."""
    return token[2:] in text or "".join(f"%{ord(c):02x}" for c in token[2:]) in text.lower()


def test_no_spelling_of_a_hook_path_puts_the_token_in_the_access_log(
    live_app: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with live_app() as (app, base_url):
        _, token = make_room(runtime_of(app))
        for target in hook_spellings(token):
            send_raw(base_url, "POST", target, b'{"participantSessionId": "ps-1"}')
    lines = [record.getMessage() for record in caplog.records]
    access = [line for line in lines if "HTTP/1.1" in line]
    assert len(access) == len(hook_spellings(token))
    assert all(REDACTED in line for line in access)
    assert not [line for line in lines if leaked(token, line)]


def test_httpx_logs_no_user_password_or_query_secret(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx")
    with serving(app) as base_url:
        host = urlsplit(base_url).netloc
        httpx.get(f"http://hook-user:hook-pass-word@{host}/healthz?secret=query-s3cret&sig=abcd1234")
    lines = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert lines and all("/healthz" in line for line in lines)
    secrets = ("hook-pass-word", "query-s3cret", "abcd1234")
    assert not [line for line in lines if any(secret in line for secret in secrets)]


PERSON = "email:ada.lovelace@example.org"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def person_requests(key: str) -> list[tuple[str, str, str]]:
    """Return (method, target, route as the log must keep it) for each path that names a person's key."""
    quoted, doubly = quote(key, safe=""), quote(quote(key, safe=""), safe="")
    return [
        ("POST", f"/api/people/{quoted}/erase", "/api/people/[redacted]/erase"),
        ("GET", f"/api/people/{key}/attendance?limit=5", "/api/people/[redacted]/attendance?limit=5"),
        ("GET", f"/api/people/{doubly}/attendance", "/api/people/[redacted]/attendance"),
        ("PUT", f"/api/sessions/ms-1/people/{quoted}/status", "/api/sessions/ms-1/people/[redacted]/status"),
        ("DELETE", f"/api/sessions/ms-1/people/{key}/status", "/api/sessions/ms-1/people/[redacted]/status"),
        ("PATCH", f"/api/rooms/standup/roster/{quoted}", "/api/rooms/standup/roster/[redacted]"),
        ("DELETE", f"/%61pi/rooms/standup/roster/{quoted}", "/api/rooms/standup/roster/[redacted]"),
    ]


def test_a_persons_key_in_a_path_is_masked_in_the_access_log_and_the_route_kept(
    live_app: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with live_app() as (app, base_url):
        make_room(runtime_of(app))
        for method, target, _ in person_requests(PERSON):
            send_raw(base_url, method, target, b"{}")
        send_raw(base_url, "GET", "/api/rooms/standup/roster/history")
    lines = [ANSI_COLOUR.sub("", record.getMessage()) for record in caplog.records]  # Werkzeug's colours
    access = [line for line in lines if "HTTP/1.1" in line]
    assert len(access) == len(person_requests(PERSON)) + 1
    for line, (method, _, route) in zip(access, person_requests(PERSON), strict=False):
        assert f'"{method} {route} HTTP/1.1"' in line
    assert '"GET /api/rooms/standup/roster/history HTTP/1.1"' in access[-1]  # no key there: kept as is
    assert not [line for line in caplog.text.splitlines() if "lovelace" in line.lower()]
