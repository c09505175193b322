"""Statuses, hosts and overrides end to end, on SQLite and PostgreSQL.

A roster arranged in the database (the roster API is another part's), meetings played by the Metered emulator
through the real webhook URLs, a real RQ worker folding them; then the session answer, its CSV, the summary
email on a real SMTP server, the signed session.amended webhook, the history, the audit, the CLI.
"""

from __future__ import annotations

import csv
import getpass
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from devtools.emulator_meeting import play_meeting
from tests.conftest import API_TOKEN, run_worker
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from tests.pure.test_notify import parts
from tests.test_mailer import Mailbox
from tests.test_notify_jobs import SECRET, mail_and_hooks
from tests.test_outbound import Receiver
from webhooks import runtime_of
from webhooks.cli import sessions_group
from workers.models import AuditRecord, Room, RosterMember

T0 = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=30)
READ_TOKEN = "read-only-token"
# 14:00 to 15:00: late after 5 minutes, early when leaving more than 10 minutes before the end.
OPTIONS = {"lateAfterSeconds": 300, "earlyLeaveSeconds": 600}
ROSTER = [  # (externalUserId, name, role)
    ("ann", "Ann", "attendee"),
    ("bob", "Bob", "attendee"),
    ("cy", "Cy", "attendee"),
    ("di", "Di", "attendee"),
    ("fay", "Fay", "attendee"),
    ("teacher", "Tess", "host"),
    ("assistant", "Al", "attendee"),  # a host too: Metered marks them isAdmin
]


def at(minutes: float, day: int = 0) -> str:
    return (T0 + timedelta(days=day, minutes=minutes)).isoformat()


def stay(psid: str, joined: float, left: float, day: int = 0, **person: Any) -> list[dict[str, Any]]:
    """A join and its leave."""
    return [
        {"event": "join", "time": at(joined, day), "participantSessionId": psid, **person},
        {"event": "leave", "time": at(left, day), "participantSessionId": psid},
    ]


def meeting(msid: str, stays: list[list[dict[str, Any]]], day: int = 0) -> list[dict[str, Any]]:
    steps = [{"event": "start", "time": at(0, day)}, *(step for s in stays for step in s)]
    return [{**step, "meetingSessionId": msid} for step in [*steps, {"event": "end", "time": at(60, day)}]]


def the_class(msid: str, day: int = 0) -> list[dict[str, Any]]:
    """The class's meeting on day `day`: who came, and when."""
    stays = [
        stay(f"{msid}-ann", 0, 60, day, externalUserId="ann", name="Ann"),
        stay(f"{msid}-bob", 12, 60, day, externalUserId="bob", name="Bob"),  # 12 minutes late
        stay(f"{msid}-fay", 0, 30, day, externalUserId="fay", name="Fay"),  # gone half an hour early
        stay(f"{msid}-tess", 0, 60, day, externalUserId="teacher", name="Tess"),
        stay(f"{msid}-al", 0, 60, day, externalUserId="assistant", name="Al", isAdmin=True),
        stay(f"{msid}-eve", 2, 58, day, email="Eve@Example.com", name="Eve"),  # not on the roster
    ]
    return meeting(msid, stays, day)


CLASS = the_class("ms-class")


def add_roster(
    Db: sessionmaker[Session],
    room_name: str,
    members: list[tuple[str, str, str]],
    valid_from: datetime = LONG_AGO,
    valid_to: datetime | None = None,
) -> None:
    with Db.begin() as db:
        room_id = db.scalars(select(Room.id).where(Room.room_name == room_name)).one()
        for external_user_id, name, role in members:
            db.add(
                RosterMember(
                    room_id=room_id,
                    participant_key=f"ext:{external_user_id}",
                    external_user_id=external_user_id,
                    name=name,
                    role=role,
                    valid_from=valid_from,
                    valid_to=valid_to,
                )
            )


def set_options(Db: sessionmaker[Session], room_name: str, **options: Any) -> None:
    # Stored as the room API stores them (validated there by the roster's part, not yet on this branch).
    with Db.begin() as db:
        room = db.scalars(select(Room).where(Room.room_name == room_name)).one()
        room.options = {**room.options, **options}


@dataclass
class Played:
    """A served app whose room `class-room` holds the final meeting ms-class, and what listens to it."""

    app: Flask
    api: httpx.Client
    mailbox: Mailbox
    receiver: Receiver

    def session(self) -> dict[str, Any]:
        answer = self.api.get("/api/sessions/ms-class")
        assert answer.status_code == 200, answer.text
        session: dict[str, Any] = answer.json()
        return session

    def statuses(self) -> dict[str, tuple[str, bool]]:
        session = self.session()
        return {
            p["participantKey"]: (p["status"], p["host"])
            for p in session["attendance"] + session["absentees"]
        }

    def work(self) -> None:
        run_worker(runtime_of(self.app))


@pytest.fixture
def played(
    live_app: Callable[..., Any], emulator: RunningEmulator, Db: sessionmaker[Session]
) -> Iterator[Played]:
    """Play the class through the emulator with a roster, a mailbox and a webhook receiver; fold it, final."""
    mailbox, receiver = Mailbox(), Receiver(SECRET)
    metered = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET}
    with (
        mail_and_hooks(mailbox, receiver) as notify,
        live_app(**metered, **notify, finalize_after_seconds=0, read_token=(READ_TOKEN,)) as (app, base_url),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10) as api,
    ):
        room = {"roomName": "class-room", "organizerEmail": "teacher@example.com"}
        assert api.post("/api/rooms", json=room).status_code == 201
        set_options(Db, "class-room", **OPTIONS)
        add_roster(Db, "class-room", ROSTER)
        assert {d.status for d in play_meeting(emulator.room("class-room"), CLASS)} == {202}
        scene = Played(app, api, mailbox, receiver)
        scene.work()
        assert scene.session()["status"] == "final"
        yield scene


def test_each_person_gets_a_status_and_hosts_stay_out_of_the_rate(
    played: Played, Db: sessionmaker[Session]
) -> None:
    session = played.session()
    assert played.statuses() == {
        "ext:ann": ("present", False),
        "ext:bob": ("late", False),
        "ext:fay": ("left_early", False),
        "ext:teacher": ("present", True),  # a roster host
        "ext:assistant": ("present", True),  # isAdmin
        "email:eve@example.com": ("guest", False),
        "ext:cy": ("absent", False),
        "ext:di": ("absent", False),
    }
    assert [p["participantKey"] for p in session["absentees"]] == ["ext:cy", "ext:di"]
    assert session["absentees"][0] == {
        "participantKey": "ext:cy",
        "name": "Cy",
        "email": None,
        "externalUserId": "cy",
        "status": "absent",
        "host": False,
        "override": None,
    }
    # Hosts are left out: Ann and Bob came of the five others expected.
    assert (session["expectedCount"], session["attendanceRate"]) == (5, 0.4)
    assert session["statusCounts"] == {
        "present": 1,
        "late": 1,
        "left_early": 1,
        "absent": 2,
        "excused": 0,
        "guest": 1,
    }


def test_a_session_is_judged_by_the_rules_stamped_on_it_not_the_room_s_later_options(
    played: Played, emulator: RunningEmulator
) -> None:
    before = played.session()
    rules = {"lateAfterSeconds": 1200, "earlyLeaveSeconds": None, "includeHostsInAttendance": True}
    assert played.api.patch("/api/rooms/class-room", json=rules).status_code == 200
    assert played.session() == before  # the past is not re-judged
    assert {d.status for d in play_meeting(emulator.room("class-room"), the_class("ms-again", 7))} == {202}
    played.work()
    answer = played.api.get("/api/sessions/ms-again").json()
    # The next session takes the new rules: Bob's 12 minutes are not late, Fay's early leave is no rule,
    # and the two hosts count: Ann, Bob, Fay, Tess and Al came of the seven expected.
    statuses = {p["participantKey"]: p["status"] for p in answer["attendance"]}
    assert (statuses["ext:bob"], statuses["ext:fay"]) == ("present", "present")
    assert (answer["expectedCount"], answer["attendanceRate"]) == (7, round(5 / 7, 4))


def test_the_csv_appends_status_and_host_and_lists_absentees(played: Played) -> None:
    text = played.api.get("/api/sessions/ms-class/attendance", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "participantKey", "name", "email", "externalUserId", "firstJoinAt", "lastLeftAt",
        "attendedSeconds", "attendancePercent", "joinCount", "present", "inferred", "status", "host",
        "firstJoinLocal", "lastLeftLocal", "timeZone",
    ]  # fmt: skip
    assert [(r["participantKey"], r["status"], r["host"]) for r in rows] == [
        ("email:eve@example.com", "guest", "false"),
        ("ext:ann", "present", "false"),
        ("ext:assistant", "present", "true"),
        ("ext:bob", "late", "false"),
        ("ext:fay", "left_early", "false"),
        ("ext:teacher", "present", "true"),
        ("ext:cy", "absent", "false"),
        ("ext:di", "absent", "false"),
    ]
    assert rows[3]["firstJoinAt"] == "2026-04-01T14:12:00.000Z"
    assert rows[-1] == {
        **dict.fromkeys(rows[0], ""),
        "participantKey": "ext:di",
        "name": "Di",
        "externalUserId": "di",
        "status": "absent",
        "host": "false",
        "timeZone": "UTC",  # named on every row, also one without times
    }


def test_the_attendance_list_pages_each_person_s_status_host_and_override(played: Played) -> None:
    api = played.api
    path = "/api/sessions/ms-class/people/ext:fay/status"
    assert api.put(path, json={"status": "present", "reason": "a call"}).status_code == 200

    def judged(people: list[dict[str, Any]]) -> dict[str, tuple[str, bool, str | None]]:
        return {
            p["participantKey"]: (p["status"], p["host"], p["override"] and p["override"]["reason"])
            for p in people
        }

    first = api.get("/api/sessions/ms-class/attendance", params={"limit": 3}).json()
    rest = api.get("/api/sessions/ms-class/attendance", params={"cursor": first["nextCursor"]}).json()
    listed = judged(first["items"] + rest["items"])
    assert listed == judged(played.session()["attendance"])  # as the session answer judges them
    assert (listed["ext:fay"], listed["ext:assistant"], listed["ext:bob"]) == (
        ("present", False, "a call"),
        ("present", True, None),
        ("late", False, None),
    )


def test_the_summary_email_lists_absentees_and_late_arrivals_first(played: Played) -> None:
    [summary] = played.mailbox.received
    text, _ = parts(summary)
    lines = text.split("Name ", 1)[1].splitlines()[1:]
    table = lines[: lines.index("")]  # up to the blank line before the page's link
    assert [line.split("  ")[0] for line in table] == ["Cy", "Di", "Bob", "Eve", "Ann", "Al", "Fay", "Tess"]
    assert "Attendance rate: 40.0%" in " ".join(text.split())


def test_an_override_is_audited_kept_in_history_amends_and_survives_rebuilds(
    played: Played, Db: sessionmaker[Session]
) -> None:
    api = played.api
    path = "/api/sessions/ms-class/people/ext:di/status"
    answer = api.put(path, json={"status": "excused", "reason": "at the dentist"})
    assert answer.status_code == 200, answer.text
    override = answer.json()["override"]
    assert answer.json() == {
        "participantKey": "ext:di",
        "name": "Di",
        "email": None,
        "externalUserId": "di",
        "status": "excused",
        "host": False,
        "override": {
            "status": "excused",
            "reason": "at the dentist",
            "setBy": "api",
            "setAt": override["setAt"],
        },
    }
    again = api.put(path, json={"status": "excused", "reason": "at the dentist"})
    assert (again.status_code, again.json()) == (200, answer.json())  # the same word again changes nothing
    assert played.statuses()["ext:di"] == ("excused", False)
    counts = played.session()["statusCounts"]
    assert (counts["absent"], counts["excused"]) == (1, 1)

    [entry] = [
        e for e in api.get("/api/sessions/ms-class/history").json()["items"] if e["cause"] == "override"
    ]
    assert entry["people"] == [
        {"participantKey": "ext:di", "by": "api", "override": override, "before": None}
    ]
    with Db() as db:
        [audit] = db.scalars(select(AuditRecord).where(AuditRecord.action.startswith("status."))).all()
        assert (audit.actor, audit.action, audit.subject, audit.before, audit.after) == (
            "api",
            "status.overridden",
            "ext:di",
            None,
            override,
        )

    played.work()  # the session was final: other systems hear that it changed
    assert [event["type"] for _, event in played.receiver.events] == ["session.finalized", "session.amended"]
    amended = played.receiver.events[1][1]["data"]
    assert [p["status"] for p in amended["absentees"]] == ["absent", "excused"]

    assert api.post("/api/sessions/ms-class/rebuild").status_code == 202
    played.work()
    result = played.app.test_cli_runner().invoke(sessions_group, ["rebuild", "ms-class"])
    assert result.exit_code == 0, result.output
    played.work()
    assert len(played.receiver.events) == 2  # rebuilt the same: nothing more to tell
    assert played.statuses()["ext:di"] == ("excused", False)
    assert played.statuses()["ext:assistant"] == ("present", True)  # isAdmin, read again from its deliveries

    assert api.delete(path).status_code == 204
    assert played.statuses()["ext:di"] == ("absent", False)
    assert api.delete(path).status_code == 404
    with Db() as db:
        actions = [
            (r.action, r.before, r.after) for r in db.scalars(select(AuditRecord).order_by(AuditRecord.id))
        ]
    assert actions[-1] == ("status.override_removed", override, None)


def test_an_attendee_can_be_overridden_from_the_cli(played: Played, Db: sessionmaker[Session]) -> None:
    runner = played.app.test_cli_runner()
    result = runner.invoke(
        sessions_group, ["override", "ms-class", "ext:fay", "present", "--reason", "a call"]
    )
    assert result.exit_code == 0, result.output
    assert '"setBy": "cli:' in result.output
    assert played.statuses()["ext:fay"] == ("present", False)
    assert runner.invoke(sessions_group, ["override", "ms-class", "ext:fay", "--clear"]).exit_code == 0
    assert played.statuses()["ext:fay"] == ("left_early", False)
    with Db() as db:
        actors = set(db.scalars(select(AuditRecord.actor).where(AuditRecord.action.startswith("status."))))
    assert actors == {f"cli:{getpass.getuser()}"}
    refused = runner.invoke(sessions_group, ["override", "ms-class", "ext:fay", "guest"])
    assert refused.exit_code == 2 and "guest" in refused.output


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"status": "guest"}, ["status"]),
        ({"status": "excused", "reason": "x" * 1001}, ["reason"]),
        ({"status": "excused", "reason": "a\x00b"}, ["reason"]),
        ({"reason": "no status", "colour": "red"}, ["status", "colour"]),
    ],
)
def test_a_bad_override_is_refused_naming_each_field(
    played: Played, body: dict[str, Any], fields: list[str]
) -> None:
    answer = played.api.put("/api/sessions/ms-class/people/ext:di/status", json=body)
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert sorted(error["field"] for error in answer.json()["errors"]) == sorted(fields)
    assert played.statuses()["ext:di"] == ("absent", False)


@pytest.mark.parametrize(
    ("body", "content_type", "status"), [("{", "application/json", 400), ("{}", "text/plain", 415)]
)
def test_an_override_body_that_is_not_json_is_refused_as_every_view_refuses_one(
    played: Played, body: str, content_type: str, status: int
) -> None:
    headers = {"Content-Type": content_type}
    answer = played.api.put("/api/sessions/ms-class/people/ext:di/status", content=body, headers=headers)
    room = played.api.post("/api/rooms", content=body, headers=headers)
    assert (answer.status_code, answer.headers["Content-Type"]) == (status, "application/problem+json")
    assert (answer.json()["title"], answer.json()["detail"]) == (room.json()["title"], room.json()["detail"])


def test_overrides_of_what_does_not_exist_and_by_read_only_tokens_are_refused(played: Played) -> None:
    api, excused = played.api, {"status": "excused"}
    assert api.put("/api/sessions/nope/people/ext:di/status", json=excused).status_code == 404
    assert api.put("/api/sessions/ms-class/people/ext:nobody/status", json=excused).status_code == 404
    assert api.delete("/api/sessions/nope/people/ext:di/status").status_code == 404
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    path = "/api/sessions/ms-class/people/ext:di/status"
    assert api.put(path, json=excused, headers=read_only).status_code == 403
    assert api.delete(path, headers=read_only).status_code == 403
    assert played.statuses()["ext:di"] == ("absent", False)


def test_each_session_is_judged_against_the_roster_in_force_when_it_began(
    live_app: Callable[..., Any], emulator: RunningEmulator, Db: sessionmaker[Session]
) -> None:
    """Ann leaves the roster and Bob joins it between Monday's and Tuesday's meetings; both come to both."""

    def both(day: int) -> list[list[dict[str, Any]]]:
        return [
            stay(f"ann-{day}", 0, 60, day, externalUserId="ann", name="Ann"),
            stay(f"bob-{day}", 0, 60, day, externalUserId="bob", name="Bob"),
        ]

    monday, tuesday = meeting("ms-monday", both(0)), meeting("ms-tuesday", both(1), day=1)
    metered = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET}
    with live_app(**metered) as (app, base_url):
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        assert api.post("/api/rooms", json={"roomName": "series-room"}).status_code == 201
        between = T0 + timedelta(hours=12)
        add_roster(Db, "series-room", [("cy", "Cy", "attendee")])
        add_roster(Db, "series-room", [("ann", "Ann", "attendee")], valid_to=between)
        add_roster(Db, "series-room", [("bob", "Bob", "attendee")], valid_from=between)
        for script in (monday, tuesday):
            assert {d.status for d in play_meeting(emulator.room("series-room"), script)} == {202}
        run_worker(runtime_of(app))
        sessions = {msid: api.get(f"/api/sessions/{msid}").json() for msid in ("ms-monday", "ms-tuesday")}
    judged = {
        msid: {p["participantKey"]: p["status"] for p in s["attendance"] + s["absentees"]}
        for msid, s in sessions.items()
    }
    assert judged == {
        "ms-monday": {"ext:ann": "present", "ext:bob": "guest", "ext:cy": "absent"},
        "ms-tuesday": {"ext:ann": "guest", "ext:bob": "present", "ext:cy": "absent"},
    }
    assert [(s["expectedCount"], s["attendanceRate"]) for s in sessions.values()] == [(2, 0.5), (2, 0.5)]
