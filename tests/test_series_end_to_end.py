"""End to end: three weekly meetings played by the Metered emulator through a room's real webhook URLs,
folded and finalized by a real RQ worker, then the series report, billable time and the absence alert.

The roster, the room's issue-13 options and an excuse are arranged as rows: their API is another part.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from devtools.emulator_meeting import play_meeting
from tests.conftest import API_TOKEN, run_worker
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from tests.test_mailer import Mailbox, smtp_server
from webhooks import runtime_of
from workers.models import MeetingSession, Room, RosterMember, StatusOverride
from workers.models.notifications import Notification
from workers.runtime import process
from workers.runtime.process import Runtime

WEEK_1 = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)
ROSTER = ["ann", "bo", "cy", "dee", "eli"]  # cy hosts


def week(number: int, people: dict[str, list[tuple[float, float]]]) -> list[dict[str, Any]]:
    """One 60-minute meeting `number` weeks after the first: each person's devices' (join, leave) minutes."""

    def at(minute: float) -> str:
        return (WEEK_1 + timedelta(weeks=number, minutes=minute)).isoformat()

    m = {"meetingSessionId": f"week-{number}"}
    steps: list[dict[str, Any]] = [{"event": "start", "time": at(0), **m}]
    for name, stays in people.items():
        who = (
            {"externalUserId": name, "name": name.title()}
            if name != "gus"
            else {"email": "Gus@Guest.example"}
        )
        for device, (came, went) in enumerate(stays):
            psid = f"{name}-{number}-{device}"
            steps.append({"event": "join", "time": at(came), "participantSessionId": psid, **who, **m})
            steps.append({"event": "leave", "time": at(went), "participantSessionId": psid, **m})
    steps[2]["duplicate"] = 1  # Metered repeats itself now and then
    return [*steps, {"event": "end", "time": at(60), **m}]


WEEKS: list[dict[str, list[tuple[float, float]]]] = [
    {  # bo 10 minutes late; dee drops and is back within the reconnect grace; gus is not on the roster
        "ann": [(0, 60)], "bo": [(10, 60)], "cy": [(0, 60)], "dee": [(0, 30), (30 + 10 / 60, 60)],
        "gus": [(0, 20)],
    },
    {"ann": [(0, 60)], "cy": [(0, 60)], "dee": [(0, 60)]},  # bo and eli absent: eli's second running
    {"ann": [(0, 60)], "bo": [(1, 60)], "cy": [(0, 60)]},  # dee absent, excused; eli's third
]  # fmt: skip


def arrange_roster(runtime: Runtime) -> None:
    with runtime.Db.begin() as db:
        room = db.scalars(select(Room).where(Room.room_name == "algebra")).one()
        options = {"lateAfterSeconds": 300, "absenceAlertAfter": 2, "billingIncrementMinutes": 15}
        room.options = {**room.options, **options}
        for name in ROSTER:
            member = RosterMember(room_id=room.id, participant_key=f"ext:{name}", external_user_id=name)
            member.name, member.email, member.group = name.title(), f"{name}@school.example", "4B"
            member.role, member.valid_from = (
                ("host" if name == "cy" else "attendee"),
                WEEK_1 - timedelta(days=1),
            )
            db.add(member)


def excuse(runtime: Runtime, meeting_session_id: str, key: str) -> None:
    with runtime.Db.begin() as db:
        query = select(MeetingSession.id).where(MeetingSession.meeting_session_id == meeting_session_id)
        override = StatusOverride(session_id=db.scalars(query).one(), participant_key=key, status="excused")
        override.set_by, override.reason = "api", "at the dentist"
        db.add(override)


def test_three_played_meetings_give_the_series_the_bill_and_one_alert(
    live_app: Callable[..., Any], emulator: RunningEmulator
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as smtp_port:
        settings = {
            "metered_api_url": emulator.url,
            "metered_secret_key": EMULATOR_SECRET,
            "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
            "mail_from": "rollcall@school.example",
        }
        # No grace period: the worker finalizes each meeting in the run that folds it.
        with live_app(**settings, finalize_after_seconds=0) as (app, base_url):
            api = httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
            )
            created = api.post(
                "/api/rooms", json={"roomName": "algebra", "organizerEmail": "t@school.example"}
            )
            assert created.status_code == 201, created.text
            runtime = runtime_of(app)
            process.install(runtime)
            arrange_roster(runtime)
            for number, people in enumerate(WEEKS):
                assert {d.status for d in play_meeting(emulator.room("algebra"), week(number, people))} == {
                    200, 202}  # fmt: skip
                run_worker(runtime)
            excuse(runtime, "week-2", "ext:dee")
            span = {"from": "2026-04-01", "to": "2026-04-16"}
            series = api.get("/api/rooms/algebra/series", params=span).json()
            series_csv = api.get("/api/rooms/algebra/series", params={**span, "format": "csv"}).text
            billing = api.get("/api/rooms/algebra/billing", params=span).json()
            with runtime.Db() as db:
                alerts = db.execute(
                    select(MeetingSession.meeting_session_id, Notification.kind, Notification.state)
                    .join(MeetingSession, MeetingSession.id == Notification.session_id)
                    .where(Notification.kind.like("absence-%"))
                ).all()

    assert [(s["meetingSessionId"], s["status"]) for s in series["sessions"]] == [
        ("week-0", "final"), ("week-1", "final"), ("week-2", "final")]  # fmt: skip
    matrix = {
        p["participantKey"]: ([c and (c["status"], c["attendedMinutes"]) for c in p["cells"]],
                              p["attendanceRate"], p["absenceRun"])
        for p in series["people"]
    }  # fmt: skip
    assert matrix == {
        "ext:ann": ([("present", 60.0), ("present", 60.0), ("present", 60.0)], 1.0, 0),
        "ext:bo": ([("late", 50.0), ("absent", 0.0), ("present", 59.0)], 0.6667, 0),
        "ext:cy": ([("present", 60.0), ("present", 60.0), ("present", 60.0)], None, 0),  # the host
        "ext:dee": ([("present", 59.8), ("present", 60.0), ("excused", 0.0)], 1.0, 0),
        "ext:eli": ([("absent", 0.0), ("absent", 0.0), ("absent", 0.0)], 0.0, 3),
        "email:gus@guest.example": ([("guest", 20.0), None, None], None, 0),
    }
    rows = list(csv.reader(io.StringIO(series_csv)))
    assert [row[0] for row in rows[1:]] == list(matrix)
    assert rows[5] == ["ext:eli", "Eli", "eli@school.example", "4B", "UTC", "absent", "0.0", "absent", "0.0",
                       "absent", "0.0", "0.0", "3"]  # fmt: skip

    billed = {p["participantKey"]: p["billedMinutes"] for p in billing["people"]}
    assert billed == {"ext:ann": 180, "ext:bo": 120, "ext:cy": 180, "ext:dee": 120,  # 59:50 bills 60
                      "email:gus@guest.example": 30}  # fmt: skip
    assert billing["billedMinutes"] == 630

    # Eli's second absence running made the alert, once, filed under the run's first absence (week 0);
    # the third made none.
    assert sorted((msid, kind[:13], state) for msid, kind, state in alerts) == [
        ("week-0", "absence-mail-", "sent")]  # fmt: skip
    assert [m["Subject"] for m in mailbox.received if m["Subject"].startswith("Absent")] == [
        "Absent 2 times running: Eli"]  # fmt: skip
