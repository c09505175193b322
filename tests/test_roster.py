"""The roster: its API (Flask test client and real HTTP), versions, audit, CSV import, amendments and CLI.

On SQLite and PostgreSQL, with real Redis behind the app; a session amended by a roster change dated
back is checked through its history and the job queued on the real queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import API_TOKEN, run_worker
from webhooks import runtime_of
from webhooks.cli import roster_group
from workers import notify_jobs
from workers.audit import cli_actor
from workers.models import AuditRecord, MeetingSession, Room, RosterMember, SessionChange, SessionStatus
from workers.rooms import new_token, token_hash
from workers.timefmt import iso_ms

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
READ_TOKEN = "read-only-roster-token"
ROOM = "algebra-101"
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
HEADER = "externalUserId,email,name,role,group"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client of an app with one room, ROOM, and no roster yet."""
    with runtime_of(app).Db.begin() as db:
        db.add(Room(room_name=ROOM, webhook_token_hash=token_hash(new_token())))
    return app.test_client()


def roster_path(key: str | None = None) -> str:
    """Return the roster's path, or one member's (the key percent-encoded as one path segment)."""
    base = f"/api/rooms/{ROOM}/roster"
    return base if key is None else f"{base}/{quote(key, safe='')}"


def add(client: FlaskClient, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    """POST a member and check the status; return the JSON answer."""
    response = client.post(roster_path(), json=body, headers=AUTH)
    assert response.status_code == status, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def listed(client: FlaskClient, **query: str) -> list[dict[str, Any]]:
    """Return every member the roster lists (all pages), as answered."""
    items, cursor = [], None
    while True:
        page = client.get(
            roster_path(), query_string={**query, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        assert page.status_code == 200, page.get_data(as_text=True)
        items += page.get_json()["items"]
        cursor = page.get_json()["nextCursor"]
        if cursor is None:
            return items


def import_csv(client: FlaskClient, text: str, status: int = 200, **query: str) -> dict[str, Any]:
    """POST a CSV to the import and check the status; return the JSON answer."""
    response = client.post(
        roster_path() + "/import",
        data=text.encode(),
        content_type="text/csv",
        query_string=query,
        headers=AUTH,
    )
    assert response.status_code == status, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def audit_trail(app: Flask) -> list[AuditRecord]:
    with runtime_of(app).Db() as db:
        return list(db.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def problems_of(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(error["field"], error["message"]) for error in answer["errors"]]


def roster_csv(rows: int, bad: dict[int, str] | None = None) -> str:
    """Return a roster CSV of `rows` students (the header on line 1), with some lines replaced by `bad`."""
    lines = [HEADER]
    for n in range(1, rows + 1):
        lines.append(f"s-{n:02},student{n}@school.example,Student {n},attendee,{'AB'[n % 2]}")
    for line_number, text in (bad or {}).items():
        lines[line_number - 1] = text
    return "\r\n".join(lines) + "\r\n"


def test_a_member_is_added_listed_and_refused_twice(client: FlaskClient) -> None:
    added = add(client, {"externalUserId": "u-42", "email": "Ann@Example.com", "name": "Ann", "group": "A"})
    assert added["participantKey"] == "ext:u-42"
    assert (added["email"], added["name"], added["role"], added["group"]) == (
        "Ann@example.com",
        "Ann",
        "attendee",
        "A",
    )
    assert added["validFrom"].endswith("Z") and added["validTo"] is None
    by_email = add(client, {"email": "Bo@Example.com", "role": "host"})
    assert by_email["participantKey"] == "email:bo@example.com"  # as attendance keys a person: lower-cased
    assert [m["participantKey"] for m in listed(client)] == ["email:bo@example.com", "ext:u-42"]
    again = client.post(roster_path(), json={"email": "BO@example.com"}, headers=AUTH)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    assert "email:bo@example.com" in again.get_json()["detail"]
    response = client.post(roster_path(), json={"externalUserId": "u-7"}, headers=AUTH)
    assert response.headers["Location"] == f"/api/rooms/{ROOM}/roster/ext%3Au-7"
    assert len(listed(client)) == 3


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "Nobody"}, ["externalUserId"]),
        ({"email": "not-an-address"}, ["email"]),
        ({"externalUserId": "u-1", "role": "teacher"}, ["role"]),
        ({"externalUserId": " ", "email": 5}, ["externalUserId", "email"]),
        ({"externalUserId": "u-1", "colour": "red"}, ["colour"]),
        ({"externalUserId": "u-1", "effectiveFrom": "last tuesday"}, ["effectiveFrom"]),
        ({"externalUserId": "u-1", "name": "x" * 201, "group": ""}, ["name", "group"]),
    ],
)
def test_a_bad_member_is_a_422_naming_each_field(
    body: dict[str, Any], fields: list[str], client: FlaskClient, app: Flask
) -> None:
    answer = add(client, body, status=422)
    assert [error["field"] for error in answer["errors"]] == fields
    assert listed(client) == [] and audit_trail(app) == []


def test_an_unknown_room_is_a_404(client: FlaskClient) -> None:
    for method, path in [
        ("GET", "/api/rooms/nope/roster"),
        ("POST", "/api/rooms/nope/roster"),
        ("PATCH", "/api/rooms/nope/roster/ext%3Au-1"),
        ("DELETE", "/api/rooms/nope/roster/ext%3Au-1"),
    ]:
        answer = client.open(path, method=method, json={"externalUserId": "u-1"}, headers=AUTH)
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json", (method, path)
    refused = client.post("/api/rooms/nope/roster/import", data=HEADER, content_type="text/csv", headers=AUTH)
    assert refused.status_code == 404


def test_the_roster_is_paginated_by_key(client: FlaskClient) -> None:
    for n in range(5):
        add(client, {"externalUserId": f"u-{n}"})
    first = client.get(roster_path(), query_string={"limit": 2}, headers=AUTH).get_json()
    assert [m["externalUserId"] for m in first["items"]] == ["u-0", "u-1"] and first["nextCursor"]
    assert [m["externalUserId"] for m in listed(client, limit="2")] == [f"u-{n}" for n in range(5)]
    assert client.get(roster_path(), query_string={"limit": 0}, headers=AUTH).status_code == 422
    bad_time = client.get(roster_path(), query_string={"at": "yesterday"}, headers=AUTH)
    assert bad_time.status_code == 422 and problems_of(bad_time.get_json())[0][0] == "at"


def test_a_change_is_a_new_version_and_the_old_one_is_still_readable(client: FlaskClient, app: Flask) -> None:
    add(client, {"externalUserId": "u-1", "name": "Ann", "effectiveFrom": iso_ms(T0)})
    later = T0 + timedelta(days=7)
    patched = client.patch(
        roster_path("ext:u-1"),
        json={"name": "Ann Lee", "role": "host", "group": "B", "effectiveFrom": iso_ms(later)},
        headers=AUTH,
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert (patched.get_json()["name"], patched.get_json()["role"]) == ("Ann Lee", "host")
    assert [m["name"] for m in listed(client)] == ["Ann Lee"]
    then = listed(client, at=iso_ms(T0 + timedelta(days=1)))
    assert [(m["name"], m["role"], m["validTo"]) for m in then] == [("Ann", "attendee", iso_ms(later))]
    assert listed(client, at=iso_ms(T0 - timedelta(seconds=1))) == []
    # null clears a field; the role goes back to attendee
    cleared = client.patch(
        roster_path("ext:u-1"), json={"group": None, "role": None}, headers=AUTH
    ).get_json()
    assert (cleared["group"], cleared["role"], cleared["name"]) == (None, "attendee", "Ann Lee")
    with runtime_of(app).Db() as db:
        assert len(db.scalars(select(RosterMember)).all()) == 3  # three versions, two of them closed


def test_a_change_may_not_make_the_member_someone_else(client: FlaskClient, app: Flask) -> None:
    add(client, {"email": "ann@example.com"})
    add(client, {"externalUserId": "u-2"})
    for key, body, field in [
        ("email:ann@example.com", {"email": "ann.lee@example.com"}, "email"),
        ("email:ann@example.com", {"externalUserId": "u-1"}, "externalUserId"),
        ("email:ann@example.com", {"email": None}, "email"),
        ("ext:u-2", {"externalUserId": "u-3"}, "externalUserId"),
    ]:
        answer = client.patch(roster_path(key), json=body, headers=AUTH)
        assert answer.status_code == 422, (key, body)
        assert [error["field"] for error in answer.get_json()["errors"]] == [field]
    # The key's own case, or an email beside an externalUserId, is no new person.
    assert (
        client.patch(
            roster_path("email:ann@example.com"), json={"email": "ANN@example.com"}, headers=AUTH
        ).status_code
        == 200
    )
    assert (
        client.patch(roster_path("ext:u-2"), json={"email": "u2@example.com"}, headers=AUTH).status_code
        == 200
    )
    assert client.patch(roster_path("ext:nobody"), json={"name": "X"}, headers=AUTH).status_code == 404
    assert [record.action for record in audit_trail(app)] == ["roster.added"] * 2 + ["roster.updated"] * 2


def test_removal_closes_the_member_from_its_time(client: FlaskClient) -> None:
    add(client, {"externalUserId": "u-1", "effectiveFrom": iso_ms(T0)})
    gone_at = T0 + timedelta(days=14)
    removed = client.delete(
        roster_path("ext:u-1"), query_string={"effectiveFrom": iso_ms(gone_at)}, headers=AUTH
    )
    assert removed.status_code == 200 and removed.get_json()["validTo"] == iso_ms(gone_at)
    assert listed(client) == []
    assert [m["participantKey"] for m in listed(client, at=iso_ms(gone_at - timedelta(seconds=1)))] == [
        "ext:u-1"
    ]
    assert client.delete(roster_path("ext:u-1"), headers=AUTH).status_code == 404
    back = add(client, {"externalUserId": "u-1", "effectiveFrom": iso_ms(gone_at + timedelta(days=1))})
    assert back["participantKey"] == "ext:u-1"


def test_a_change_cannot_reach_back_before_the_members_last_one(client: FlaskClient) -> None:
    add(client, {"externalUserId": "u-1", "effectiveFrom": iso_ms(T0)})
    early = {"effectiveFrom": iso_ms(T0 - timedelta(days=1))}
    answer = client.patch(roster_path("ext:u-1"), json={"name": "A", **early}, headers=AUTH)
    assert answer.status_code == 422
    assert problems_of(answer.get_json()) == [
        ("effectiveFrom", f"is before the last change to ext:u-1 ({iso_ms(T0)})")
    ]
    assert client.delete(roster_path("ext:u-1"), query_string=early, headers=AUTH).status_code == 422
    assert (
        client.delete(
            roster_path("ext:u-1"), query_string={"effectiveFrom": "soon"}, headers=AUTH
        ).status_code
        == 422
    )


def test_every_change_is_audited_with_before_and_after(client: FlaskClient, app: Flask) -> None:
    add(client, {"externalUserId": "u-1", "name": "Ann"})
    client.patch(roster_path("ext:u-1"), json={"name": "Ann Lee"}, headers=AUTH)
    client.delete(roster_path("ext:u-1"), headers=AUTH)
    added, updated, removed = audit_trail(app)
    assert [(r.action, r.actor, r.subject) for r in (added, updated, removed)] == [
        ("roster.added", "api", "ext:u-1"),
        ("roster.updated", "api", "ext:u-1"),
        ("roster.removed", "api", "ext:u-1"),
    ]
    # Each request its own id, made by the app as none was sent.
    assert len({r.request_id for r in (added, updated, removed)} - {None}) == 3
    assert added.before is None and added.after is not None and added.after["name"] == "Ann"
    assert updated.before == added.after  # the version it closed, as it stood
    assert updated.after is not None and updated.after["name"] == "Ann Lee"
    assert removed.before is not None and removed.before["name"] == "Ann Lee" and removed.after is None
    with runtime_of(app).Db() as db:
        room_id = db.scalar(select(Room.id).where(Room.room_name == ROOM))
    assert {record.room_id for record in (added, updated, removed)} == {room_id}


def test_the_history_lists_roster_changes_newest_first_a_page_at_a_time(
    client: FlaskClient, app: Flask
) -> None:
    add(client, {"externalUserId": "u-1", "name": "Ann"})
    client.patch(roster_path("ext:u-1"), json={"name": "Ann Lee"}, headers=AUTH)
    add(client, {"email": "bo@example.com"})
    client.delete(roster_path("ext:u-1"), headers=AUTH)
    with runtime_of(app).Db.begin() as db:  # another kind of audit record, not the roster's
        db.add(AuditRecord(actor="api", action="status.overridden", room_id=db.scalar(select(Room.id))))
    first = client.get(roster_path() + "/history", query_string={"limit": 3}, headers=AUTH).get_json()
    rest = client.get(
        roster_path() + "/history", query_string={"cursor": first["nextCursor"]}, headers=AUTH
    ).get_json()
    changes = first["items"] + rest["items"]
    assert rest["nextCursor"] is None
    assert [(c["action"], c["participantKey"], c["actor"]) for c in changes] == [
        ("roster.removed", "ext:u-1", "api"),
        ("roster.added", "email:bo@example.com", "api"),
        ("roster.updated", "ext:u-1", "api"),
        ("roster.added", "ext:u-1", "api"),
    ]
    assert changes[2]["before"]["name"] == "Ann" and changes[2]["after"]["name"] == "Ann Lee"
    assert changes[0]["after"] is None and changes[0]["at"].endswith("Z")
    missing = client.get("/api/rooms/nope/roster/history", headers=AUTH)
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"
    bad = client.get(roster_path() + "/history", query_string={"limit": 0}, headers=AUTH)
    assert bad.status_code == 422 and [e["field"] for e in bad.get_json()["errors"]] == ["limit"]


def test_a_30_row_csv_with_a_bad_row_imports_nothing_and_names_the_line(
    client: FlaskClient, app: Flask
) -> None:
    text = roster_csv(30, bad={17: "s-16,student16@,Student 16,attendee,A"})
    answer = import_csv(client, text, status=422)
    assert answer["status"] == 422 and answer["title"] == "Validation failed"
    assert [field for field, _ in problems_of(answer)] == ["line 17: email"]
    assert listed(client) == [] and audit_trail(app) == []
    assert import_csv(client, roster_csv(30)) == {"added": 30, "updated": 0, "removed": 0, "unchanged": 0}
    members = listed(client)
    assert len(members) == 30 and members[0]["participantKey"] == "ext:s-01"
    assert (members[15]["email"], members[15]["group"]) == ("student16@school.example", "A")


def test_an_import_adds_updates_keeps_and_with_replace_removes(client: FlaskClient, app: Flask) -> None:
    import_csv(client, roster_csv(5))
    changed = roster_csv(6, bad={3: "s-02,student2@school.example,Student Two,host,A"})
    assert import_csv(client, changed) == {"added": 1, "updated": 1, "removed": 0, "unchanged": 4}
    assert import_csv(client, changed) == {"added": 0, "updated": 0, "removed": 0, "unchanged": 6}
    fewer = roster_csv(3, bad={3: "s-02,student2@school.example,Student Two,host,A"})
    assert import_csv(client, fewer, replace="true") == {
        "added": 0,
        "updated": 0,
        "removed": 3,
        "unchanged": 3,
    }
    assert [m["externalUserId"] for m in listed(client)] == ["s-01", "s-02", "s-03"]
    actions = [record.action for record in audit_trail(app)]
    assert actions == ["roster.added"] * 5 + ["roster.updated", "roster.added"] + ["roster.removed"] * 3
    assert import_csv(client, fewer, replace="maybe", status=422)["errors"][0]["field"] == "replace"


def test_the_import_takes_csv_only(client: FlaskClient) -> None:
    as_json = client.post(roster_path() + "/import", json={"email": "a@example.com"}, headers=AUTH)
    assert as_json.status_code == 415 and as_json.mimetype == "application/problem+json"
    latin1 = client.post(
        roster_path() + "/import",
        data="email,name\nz@example.com,Zoë\n".encode("latin-1"),
        content_type="text/csv",
        headers=AUTH,
    )
    assert latin1.status_code == 400


def make_sessions(app: Flask) -> dict[str, int]:
    """Arrange three sessions of ROOM: one before T0, one final and one live after it; return their ids."""
    ids = {}
    with runtime_of(app).Db.begin() as db:
        room_id = db.scalar(select(Room.id).where(Room.room_name == ROOM))
        for name, began, status in [
            ("week-0", T0 - timedelta(days=7), SessionStatus.FINAL),
            ("week-1", T0 + timedelta(days=1), SessionStatus.FINAL),
            ("week-2", T0 + timedelta(days=8), SessionStatus.LIVE),
        ]:
            meeting = MeetingSession(
                room_id=room_id, meeting_session_id=name, started_at=began, status=status
            )
            db.add(meeting)
            db.flush()
            ids[name] = meeting.id
    return ids


def history(client: FlaskClient, meeting_session_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/sessions/{meeting_session_id}/history", headers=AUTH)
    assert answer.status_code == 200
    items: list[dict[str, Any]] = answer.get_json()["items"]
    return items


def queued_amendments(app: Flask) -> list[int]:
    """Return the session ids of the session.amended jobs on the real queue."""
    queue = runtime_of(app).queue()
    return sorted(job.args[0] for job in queue.jobs if job.func is notify_jobs.session_amended)


def test_a_change_dated_back_amends_the_sessions_begun_since(client: FlaskClient, app: Flask) -> None:
    ids = make_sessions(app)
    add(client, {"externalUserId": "u-1", "effectiveFrom": iso_ms(T0)})
    assert history(client, "week-0") == []
    for name in ("week-1", "week-2"):
        (entry,) = history(client, name)
        assert entry["cause"] == "roster"
        assert entry["people"] == [{"participantKey": "ext:u-1", "roster": "added", "by": "api"}]
        assert entry["figures"]["participantCount"] == 0  # the figures do not move
    assert queued_amendments(app) == [ids["week-1"]]  # only a final session tells other systems
    import_csv(client, roster_csv(2), effectiveFrom=iso_ms(T0 + timedelta(days=2)), replace="true")
    assert [e["people"] for e in history(client, "week-2")][-1] == [
        {"participantKey": "ext:s-01", "roster": "added", "by": "api"},
        {"participantKey": "ext:s-02", "roster": "added", "by": "api"},
        {"participantKey": "ext:u-1", "roster": "removed", "by": "api"},
    ]
    assert len(history(client, "week-1")) == 1
    run_worker(runtime_of(app))  # the queued job runs in a real worker (no webhook set: nothing to send)
    assert queued_amendments(app) == []


def test_a_change_from_now_amends_nothing(client: FlaskClient, app: Flask) -> None:
    make_sessions(app)
    add(client, {"externalUserId": "u-1"})
    with runtime_of(app).Db() as db:
        assert db.scalars(select(SessionChange)).all() == []
    assert queued_amendments(app) == []


def test_a_read_only_token_reads_the_roster_and_changes_nothing(
    live_app: Callable[..., Any], Db: sessionmaker[Session]
) -> None:
    with live_app(read_token=(READ_TOKEN,)) as (app, base_url):
        with runtime_of(app).Db.begin() as db:
            db.add(Room(room_name=ROOM, webhook_token_hash=token_hash(new_token())))
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        with httpx.Client(base_url=base_url, timeout=10) as http:
            assert http.post(roster_path(), json={"externalUserId": "u/1"}, headers=AUTH).status_code == 201
            assert http.get(roster_path(), headers=read).status_code == 200
            for method, path in [
                ("POST", roster_path()),
                ("PATCH", roster_path("ext:u/1")),
                ("DELETE", roster_path("ext:u/1")),
                ("POST", roster_path() + "/import"),
            ]:
                answer = http.request(method, path, json={"externalUserId": "u-2"}, headers=read)
                assert answer.status_code == 403, (method, path)
            # Over real HTTP the key travels percent-encoded, its slash included.
            patched = http.patch(roster_path("ext:u/1"), json={"name": "Slash"}, headers=AUTH)
            assert patched.status_code == 200 and patched.json()["participantKey"] == "ext:u/1"
            imported = http.post(
                roster_path() + "/import", content=roster_csv(2), headers={**AUTH, "Content-Type": "text/csv"}
            )
            assert imported.json() == {"added": 2, "updated": 0, "removed": 0, "unchanged": 0}
    with Db() as db:
        assert len(db.scalars(select(RosterMember).where(RosterMember.valid_to.is_(None))).all()) == 3


@pytest.fixture
def cli(client: FlaskClient, app: Flask) -> Callable[..., Result]:
    """Return a runner of `flask roster ARGS...` against the app with ROOM."""
    runner = app.test_cli_runner()

    def run(*args: str) -> Result:
        return runner.invoke(roster_group, list(args))

    return run


def test_cli_adds_lists_imports_and_removes_as_the_os_user(
    cli: Callable[..., Result], app: Flask, tmp_path: Path
) -> None:
    added = cli("add", ROOM, "--external-user-id", "u-1", "--name", "Ann", "--role", "host", "--group", "A")
    assert added.exit_code == 0 and "added ext:u-1" in added.output
    assert cli("add", ROOM, "--email", "Bo@Example.com", "--effective-from", "2026-09-01").exit_code == 0
    table = cli("list", ROOM).output.splitlines()
    assert [line.split()[:2] for line in table] == [["email:bo@example.com", "attendee"], ["ext:u-1", "host"]]
    file = tmp_path / "roster.csv"
    file.write_text(roster_csv(3))
    imported = cli("import", ROOM, str(file), "--replace")
    assert imported.exit_code == 0, imported.output
    assert "added 3, updated 0, removed 2, unchanged 0" in imported.output
    removed = cli("remove", ROOM, "ext:s-02")
    assert removed.exit_code == 0 and "removed ext:s-02" in removed.output
    assert [m["participantKey"] for m in json.loads(cli("list", ROOM, "--json").output)] == [
        "ext:s-01",
        "ext:s-03",
    ]
    assert {record.actor for record in audit_trail(app)} == {cli_actor()}


def test_cli_updates_a_member_as_patch_does(cli: Callable[..., Result], client: FlaskClient) -> None:
    add(client, {"externalUserId": "u-1", "name": "Ann", "group": "A"})
    updated = cli("update", ROOM, "ext:u-1", "--name", "Ann Lee", "--role", "host", "--group", "")
    assert updated.exit_code == 0 and "updated ext:u-1" in updated.output, updated.output
    [ann] = listed(client)
    assert (ann["name"], ann["role"], ann["group"], ann["email"]) == ("Ann Lee", "host", None, None)
    assert "email" in cli("update", ROOM, "ext:u-1", "--email", "not-an-address").output
    assert "is not on the roster" in cli("update", ROOM, "ext:nobody", "--name", "X").output
    assert [c["actor"] for c in client.get(roster_path() + "/history", headers=AUTH).get_json()["items"]] == [
        cli_actor(),
        "api",
    ]


def test_cli_refusals_say_what_is_wrong_and_change_nothing(
    cli: Callable[..., Result], app: Flask, tmp_path: Path
) -> None:
    file = tmp_path / "roster.csv"
    file.write_text(roster_csv(30, bad={12: "s-11,nope,Student 11,attendee,A"}))
    refused = cli("import", ROOM, str(file))
    assert (
        refused.exit_code == 1
        and "nothing was changed" in refused.output
        and "line 12: email" in refused.output
    )
    assert "email" in cli("add", ROOM, "--email", "not-an-address").output
    assert "externalUserId or email is required" in cli("add", ROOM, "--name", "Nobody").output
    assert cli("add", ROOM, "--external-user-id", "u-1").exit_code == 0
    assert "is on the roster already" in cli("add", ROOM, "--external-user-id", "u-1").output
    assert "is not on the roster" in cli("remove", ROOM, "ext:nobody").output
    assert "there is no room named nope" in cli("list", "nope").output
    assert "not a readable time" in cli("remove", ROOM, "ext:u-1", "--effective-from", "soon").output
    assert [record.action for record in audit_trail(app)] == ["roster.added"]


@pytest.mark.slow
def test_a_redis_outage_does_not_undo_a_change_dated_back(
    live_app: Callable[..., Any], own_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_redis()
    with live_app(redis_url=own_redis.url) as (app, base_url):
        with runtime_of(app).Db.begin() as db:
            db.add(Room(room_name=ROOM, webhook_token_hash=token_hash(new_token())))
        make_sessions(app)
        server.kill()
        server.wait()
        body = {"externalUserId": "u-1", "effectiveFrom": iso_ms(T0)}
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as http:
            assert http.post(roster_path(), json=body).status_code == 201
            history = http.get("/api/sessions/week-1/history").json()["items"]
    assert [entry["cause"] for entry in history] == ["roster"]
    assert "session.amended not queued for 1 session(s)" in caplog.text


def test_the_database_keeps_one_row_in_force_per_person(Db: sessionmaker[Session]) -> None:
    """Two writers that both found the person absent cannot both open a row: the second commit fails."""
    with Db.begin() as db:
        room = Room(room_name="one-open-row", webhook_token_hash=token_hash(new_token()))
        db.add(room)
        db.flush()
        room_id = room.id
        closed = RosterMember(room_id=room_id, participant_key="ext:u-1", valid_to=datetime.now(UTC))
        db.add_all([closed, RosterMember(room_id=room_id, participant_key="ext:u-1")])  # closed + open: fine
    with pytest.raises(IntegrityError), Db.begin() as db:
        db.add(RosterMember(room_id=room_id, participant_key="ext:u-1"))
