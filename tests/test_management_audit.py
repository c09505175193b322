"""Who did what: named tokens, request ids, every management change recorded, listed and exported."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PUBLIC_BASE_URL, run_worker
from tests.emulator_fixture import (
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,  # noqa: F401 - a fixture
    served_emulator_fixture,  # noqa: F401 - a fixture
)
from tests.test_audit import post
from tests.test_inbox import make_room
from webhooks import cli as commands
from webhooks import create_app, runtime_of
from workers.models.base import utcnow
from workers.runtime import process
from workers.runtime.settings import Settings

OPS, PLAIN = "ops-secret-0123456789", "plain-secret-0123456789"
AS_OPS = {"Authorization": f"Bearer {OPS}"}
AS_PLAIN = {"Authorization": f"Bearer {PLAIN}"}


@pytest.fixture
def audited_app(make_settings: Callable[..., Settings], emulator: RunningEmulator) -> Iterator[Flask]:
    """An app with a named token (`ops`) and an unnamed one, whose Metered is the emulator."""
    flask_app = create_app(
        make_settings(
            api_token=(f"ops:{OPS}", PLAIN),
            metered_api_url=emulator.url,
            metered_secret_key=EMULATOR_SECRET,
            public_base_url=PUBLIC_BASE_URL,
        )
    )
    commands.register(flask_app)
    yield flask_app
    runtime_of(flask_app).engine.dispose()


def records(client: FlaskClient, **params: str | int) -> list[dict[str, Any]]:
    response = client.get("/api/audit", query_string=params, headers=AS_OPS)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json["items"]  # type: ignore[index]
    return items


def test_each_room_change_is_recorded_with_its_token_name_request_id_before_and_after(
    audited_app: Flask,
) -> None:
    client = audited_app.test_client()
    created = client.post(
        "/api/rooms",
        json={"roomName": "board", "privacy": "private"},
        headers={**AS_OPS, "X-Request-Id": "r-1"},
    )
    assert created.status_code == 201 and created.headers["X-Request-Id"] == "r-1"
    changed = client.patch("/api/rooms/board", json={"organizerEmail": "chair@example.com"}, headers=AS_PLAIN)
    generated = changed.headers["X-Request-Id"]
    assert len(generated) == 32  # none offered: one made here
    assert client.post("/api/rooms/board/rotate-token", headers=AS_OPS).status_code == 200
    assert client.delete("/api/rooms/board", headers=AS_OPS).status_code == 200

    archived, rotated, updated, made = records(client)
    assert [made["action"], updated["action"], rotated["action"], archived["action"]] == [
        "room.created",
        "room.updated",
        "room.token_rotated",
        "room.archived",
    ]
    assert (made["actor"], made["requestId"], made["room"], made["before"]) == (
        "api:ops",
        "r-1",
        "board",
        None,
    )
    assert made["after"]["options"] == {"privacy": "private"}
    assert (updated["actor"], updated["requestId"]) == ("api", generated)
    assert updated["before"]["organizerEmail"] is None
    assert updated["after"]["organizerEmail"] == "chair@example.com"
    assert rotated["before"]["tokenRotatedAt"] is None and rotated["after"]["tokenRotatedAt"] is not None
    assert archived["before"]["archivedAt"] is None and archived["after"]["archivedAt"] is not None
    # Neither a webhook token nor an API token is ever recorded.
    token = created.json["webhookUrls"]["meetingJoinWebhook"].split("/")[-2]  # type: ignore[index]
    dumped = json.dumps(records(client))
    assert token not in dumped and OPS not in dumped and PLAIN not in dumped


def test_records_filter_and_page_like_events(audited_app: Flask) -> None:
    client = audited_app.test_client()
    started = utcnow()
    for name in ("one", "two", "three"):
        assert client.post("/api/rooms", json={"roomName": name}, headers=AS_OPS).status_code == 201
    assert client.delete("/api/rooms/two", headers=AS_PLAIN).status_code == 200
    assert [r["action"] for r in records(client, room="two")] == ["room.archived", "room.created"]
    assert [r["room"] for r in records(client, action="room.created")] == ["three", "two", "one"]
    assert [r["room"] for r in records(client, actor="api")] == ["two"]
    assert records(client, since=utcnow().isoformat()) == []
    assert len(records(client, since=started.isoformat(), until=utcnow().isoformat())) == 4
    assert records(client, until=started.isoformat()) == []
    first = client.get("/api/audit", query_string={"limit": 3}, headers=AS_OPS).json
    assert first is not None and len(first["items"]) == 3
    rest = records(client, limit=3, cursor=first["nextCursor"])
    assert [r["room"] for r in rest] == ["one"]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"since": "soon"}, ["since"]),
        ({"since": "x", "until": "y"}, ["since", "until"]),
        ({"limit": "0"}, ["limit"]),
    ],
)
def test_bad_audit_filters_are_422_naming_each(
    audited_app: Flask, params: dict[str, str], fields: list[str]
) -> None:
    response = audited_app.test_client().get("/api/audit", query_string=params, headers=AS_OPS)
    assert response.status_code == 422
    assert [error["field"] for error in response.json["errors"]] == fields  # type: ignore[index]


def test_an_unusable_request_id_is_replaced(audited_app: Flask) -> None:
    client = audited_app.test_client()
    for offered in ("x" * 65, "two words"):
        answered = client.get("/api/audit", headers={**AS_OPS, "X-Request-Id": offered}).headers[
            "X-Request-Id"
        ]
        assert answered != offered and len(answered) == 32


def test_cli_changes_are_recorded_as_the_os_user(audited_app: Flask) -> None:
    cli = audited_app.test_cli_runner()
    assert cli.invoke(args=["rooms", "create", "--room-name", "desk"]).exit_code == 0
    assert cli.invoke(args=["rooms", "rotate-token", "desk"]).exit_code == 0
    assert cli.invoke(args=["rooms", "delete", "desk"]).exit_code == 0
    listed = records(audited_app.test_client())
    assert [(r["action"], r["actor"], r["requestId"]) for r in listed] == [
        (action, f"cli:{getpass.getuser()}", None)
        for action in ("room.archived", "room.token_rotated", "room.created")
    ]


def test_replays_and_rebuilds_are_recorded(api: httpx.Client) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    _, token = make_room(runtime)
    delivery_id = post(api, token, 1)
    run_worker(runtime)
    assert (
        api.post(f"/api/events/{delivery_id}/replay", headers={"X-Request-Id": "replay-1"}).status_code == 202
    )
    assert api.post("/api/sessions/ms-1/rebuild", headers={"X-Request-Id": "rebuild-1"}).status_code == 202
    run_worker(runtime)
    rebuilt, replayed = api.get("/api/audit").json()["items"]
    assert (replayed["action"], replayed["subject"], replayed["requestId"]) == (
        "delivery.replayed",
        str(delivery_id),
        "replay-1",
    )
    assert (replayed["before"]["status"], replayed["after"]["status"]) == ("processed", "queued")
    assert (rebuilt["action"], rebuilt["meetingSessionId"], rebuilt["requestId"]) == (
        "session.rebuilt",
        "ms-1",
        "rebuild-1",
    )
    assert rebuilt["before"] == rebuilt["after"]  # nothing changed since the first fold
    assert rebuilt["actor"] == "api"


def test_an_export_read_back_line_by_line_equals_what_the_api_lists(api: httpx.Client) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    _, token = make_room(runtime)
    for index in range(7):
        post(api, token, index)
    run_worker(runtime)
    for delivery in api.get("/api/events", params={"limit": 3}).json()["items"]:
        api.post(f"/api/events/{delivery['id']}/replay")
    listed = {
        "deliveries": api.get("/api/events", params={"limit": 500}).json()["items"][::-1],
        "management": api.get("/api/audit", params={"limit": 500}).json()["items"][::-1],
    }
    for kind, expected in listed.items():
        with api.stream("GET", "/api/audit/export", params={"kind": kind}) as response:
            assert response.headers["Content-Type"] == "application/x-ndjson"
            lines = [json.loads(line) for line in response.iter_lines()]
        assert lines == expected and len(lines) in (7, 3)
        # A broken download resumes after the last line kept.
        kept = lines[1]["id"]
        resumed = api.get("/api/audit/export", params={"kind": kind, "cursor": kept}).text.splitlines()
        assert [json.loads(line) for line in resumed] == expected[2:]
        cli = api.app.test_cli_runner()  # type: ignore[attr-defined]
        written = cli.invoke(args=["audit", "export", "--kind", kind, "--cursor", str(kept)])
        assert written.exit_code == 0, written.output
        assert [json.loads(line) for line in written.output.splitlines()] == expected[2:]
    until = api.get("/api/audit/export", params={"kind": "deliveries", "until": "2000-01-01T00:00:00Z"})
    assert until.text == ""


def test_bad_export_requests_are_422_naming_each_field(api: httpx.Client) -> None:
    response = api.get("/api/audit/export", params={"kind": "all", "since": "soon", "cursor": "-1"})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["kind", "since", "cursor"]


def test_a_cursor_past_every_id_finds_nothing_after_it(api: httpx.Client) -> None:
    """Audit record ids are 32-bit on PostgreSQL; a cursor past them is still a cursor, not a 500."""
    past = str(2**31)
    for kind in ("management", "deliveries"):
        response = api.get("/api/audit/export", params={"kind": kind, "cursor": past})
        assert (response.status_code, response.text) == (200, "")


def test_the_openapi_document_describes_the_audit_endpoints_and_the_request_id(audited_app: Flask) -> None:
    document = audited_app.test_client().get("/openapi.json").json
    assert document is not None
    paths = document["paths"]
    assert {"/api/audit", "/api/audit/export", "/api/events/replay", "/api/jobs/{jobId}"} <= set(paths)
    listed = paths["/api/audit"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AuditPage"}
    assert "X-Request-Id" in listed["headers"]
    assert "application/x-ndjson" in paths["/api/audit/export"]["get"]["responses"]["200"]["content"]
