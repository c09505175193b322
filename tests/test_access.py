"""Who may call what (API_TOKEN, READ_TOKEN), and the headers every answer carries, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import API_TOKEN
from tests.test_pages import hold_meeting
from webhooks import runtime_of
from webhooks.auth import READABLE_BLUEPRINTS, require_basic, require_token
from webhooks.csrf import FORGED

READ_TOKEN = "read-only-token"


@pytest.fixture
def served(live_app: Callable[..., Any]) -> Iterator[tuple[Flask, str, sessionmaker[Session]]]:
    """Serve an app with an API token and two read-only tokens; return it, its URL and its sessionmaker."""
    with live_app(read_token=("other-read-token", READ_TOKEN)) as (app, base_url):
        yield app, base_url, runtime_of(app).Db


def guarded_calls(app: Flask) -> list[tuple[str, str, bool, str]]:
    """Return (method, path, is_page, blueprint) for every route behind a token (variables made `x`)."""
    wrappers: dict[object, bool] = {
        require_token(lambda: None).__code__: False,
        require_basic(lambda: None).__code__: True,
    }
    calls = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        is_page = wrappers.get(getattr(view, "__code__", None))
        if is_page is not None:
            path = re.sub(r"<(?:int[^>]*:)[^>]+>", "1", rule.rule)
            path = re.sub(r"<[^>]+>", "x", path)
            blueprint = rule.endpoint.partition(".")[0]
            methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
            calls += [(method, path, is_page, blueprint) for method in methods]
    return calls


def credentials(token: str, is_page: bool) -> dict[str, Any]:
    if is_page:
        return {"auth": ("anyone", token)}
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_a_read_only_token_reads_reports_and_pages(served: Any) -> None:
    _, base_url, Db = served
    room_name = hold_meeting(Db)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        bearer = credentials(READ_TOKEN, is_page=False)
        for path in (
            f"/api/rooms/{room_name}/sessions",
            "/api/sessions/m-weekly",
            "/api/sessions/m-weekly/attendance?format=csv",
            "/api/sessions/m-weekly/history",
            "/api/people/ext:ann/attendance",
            "/api/events",
            f"/api/rooms/{room_name}/roster",
            f"/api/rooms/{room_name}/series?from=2026-01-01&to=2027-01-01",
            f"/api/rooms/{room_name}/billing?from=2026-01-01&to=2027-01-01&format=csv",
            "/api/audit",
            "/api/audit/seals",
        ):
            assert client.get(path, **bearer).status_code == 200, path
        for path in ("/sessions/m-weekly", f"/rooms/{room_name}"):
            assert client.get(path, **credentials(READ_TOKEN, is_page=True)).status_code == 200, path


def test_a_read_only_token_is_refused_every_change_and_room_management(served: Any) -> None:
    app, base_url, _ = served
    readable = [call for call in guarded_calls(app) if call[0] == "GET" and call[3] in READABLE_BLUEPRINTS]
    # Starting a verify (READABLE_POSTS) only reads: tests/test_seals.py has a read-only token do it.
    readable.append(("POST", "/api/audit/verify", False, "seals"))
    refused = [call for call in guarded_calls(app) if call not in readable]
    methods = {method for method, *_ in refused}
    assert {"POST", "PATCH", "DELETE"} <= methods and ("GET", "/api/rooms", False, "rooms") in refused
    assert ("GET", "/api/audit/export", False, "audit_export") in refused  # raw bodies in bulk
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for method, path, is_page, _ in refused:
            answer = client.request(method, path, json={}, **credentials(READ_TOKEN, is_page))
            assert answer.status_code == 403, (method, path)
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert "read-only" in answer.json()["detail"]
            # The API token is not refused there (whatever the call then answers; a page's form is refused
            # without its CSRF token, not for the credential).
            full = client.request(method, path, json={}, **credentials(API_TOKEN, is_page))
            assert full.status_code != 403 or (is_page and full.json()["detail"] == FORGED), (method, path)


def test_an_unknown_token_is_still_401(served: Any) -> None:
    _, base_url, _ = served
    answer = httpx.get(base_url + "/api/events", headers={"Authorization": "Bearer read-only"}, timeout=10)
    assert answer.status_code == 401


def test_pages_carry_a_csp_whose_nonce_is_the_stylesheets(served: Any) -> None:
    _, base_url, Db = served
    hold_meeting(Db)
    answers = [
        httpx.get(base_url + "/sessions/m-weekly", auth=("anyone", READ_TOKEN), timeout=10) for _ in range(2)
    ]
    nonces = []
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "script-src" not in policy  # no script may run
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce and f'<style nonce="{nonce.group(1)}">' in answer.text
        assert "style=" not in answer.text.replace(f'<style nonce="{nonce.group(1)}">', "")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        nonces.append(nonce.group(1))
    assert nonces[0] != nonces[1]


def test_api_answers_and_problems_are_never_cached_or_sniffed(served: Any) -> None:
    _, base_url, _ = served
    for answer in (
        httpx.get(base_url + "/api/events", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10),
        httpx.get(base_url + "/api/events", timeout=10),
        httpx.get(base_url + "/api/sessions/none", headers={"Authorization": f"Bearer {API_TOKEN}"}),
    ):
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in answer.headers
