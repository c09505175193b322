"""End to end: a room created through the API, a meeting played by the Metered emulator through the real
webhook URLs, a real RQ worker folding it, and the report API and CSV showing the hand-worked figures."""

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
from webhooks import runtime_of
from workers.models import Room
from workers.runtime import process

T0 = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)
MEETING = "6650a1b2c3d4e5f6a7b8c9d0"


def minute(value: float) -> str:
    return (T0 + timedelta(minutes=value)).isoformat()


def script() -> list[dict[str, Any]]:
    """A 60-minute meeting, delivered with duplicates and out of order.

    Ann (externalUserId) is there throughout.           attended 60:00, 100.0 %, 1 join
    Bob (email) drops at 20:00, back at 20:20 (< 30 s grace), leaves at 50:00.
                                                         attended 44:40, 74.4 %, 1 join
    Cy (name only) joins at 40:00 on a laptop and at 45:00 on a phone; the phone leaves at 55:00 and the
    laptop's leave never comes (closed at the end, inferred).  attended 20:00, 33.3 %, 1 join, not present
    Peak: Ann, Bob and Cy together from 40:00 to 50:00 = 3.
    """
    m = {"meetingSessionId": MEETING}
    return [
        {"event": "start", "time": minute(0), **m},
        {
            "event": "join",
            "time": minute(0),
            "participantSessionId": "ann-1",
            "externalUserId": "u-ann",
            "name": "Ann",
            **m,
        },
        {
            "event": "join",
            "time": minute(5),
            "participantSessionId": "bob-1",
            "email": "Bob@Example.com",
            "name": "Bob",
            "duplicate": 2,
            **m,
        },
        {"event": "leave", "time": minute(20), "participantSessionId": "bob-1", "reorder": True, **m},
        {
            "event": "join",
            "time": minute(20 + 20 / 60),
            "participantSessionId": "bob-2",
            "email": "bob@example.com",
            "name": "Bob",
            **m,
        },
        {"event": "join", "time": minute(40), "participantSessionId": "cy-laptop", "name": "Cy", **m},
        {"event": "join", "time": minute(45), "participantSessionId": "cy-phone", "name": "Cy", **m},
        {"event": "leave", "time": minute(50), "participantSessionId": "bob-2", "duplicate": 1, **m},
        {"event": "leave", "time": minute(55), "participantSessionId": "cy-phone", **m},
        {"event": "leave", "time": minute(60), "participantSessionId": "ann-1", **m},
        {"event": "end", "time": minute(60), "duplicate": 1, **m},
    ]


def test_a_played_meeting_becomes_the_expected_attendance(
    live_app: Callable[..., Any], emulator: RunningEmulator
) -> None:
    settings = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET}
    # No grace period: the worker finalizes the session in the same run, and plans its summary email.
    with live_app(**settings, finalize_after_seconds=0) as (app, base_url):
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        room = {"roomName": "e2e-room", "minAttendancePercent": 50, "organizerEmail": "org@example.com"}
        created = api.post("/api/rooms", json=room)
        assert created.status_code == 201, created.text

        deliveries = play_meeting(emulator.room("e2e-room"), script())
        assert [d.status for d in deliveries].count(202) == 11  # one per fact
        assert {d.status for d in deliveries} == {200, 202}  # the rest are duplicates

        runtime = runtime_of(app)
        process.install(runtime)
        run_worker(runtime)

        session = api.get(f"/api/sessions/{MEETING}").json()
        csv_text = api.get(f"/api/sessions/{MEETING}/attendance", headers={"Accept": "text/csv"}).text

    assert {
        k: session[k]
        for k in (
            "status",
            "startedAt",
            "endedAt",
            "durationSeconds",
            "participantCount",
            "peakConcurrency",
            "inferred",
        )
    } == {
        "status": "final",
        "startedAt": "2026-04-01T14:00:00.000Z",
        "endedAt": "2026-04-01T15:00:00.000Z",
        "durationSeconds": 3600.0,
        "participantCount": 3,
        "peakConcurrency": 3,
        "inferred": False,
    }
    # SMTP_URL is unset: the summary is not sent, and the session's record says so.
    assert [(n["recipient"], n["kind"], n["state"], n["reason"]) for n in session["notifications"]] == [
        ("org@example.com", "summary", "failed", "SMTP_URL is not set")
    ]
    people = {p["participantKey"]: p for p in session["attendance"]}
    figures = {
        key: (p["attendedSeconds"], p["attendancePercent"], p["joinCount"], p["present"], p["inferred"])
        for key, p in people.items()
    }
    assert figures == {
        "ext:u-ann": (3600.0, 100.0, 1, True, False),
        "email:bob@example.com": (2680.0, 74.4, 1, True, False),
        "name:Cy": (1200.0, 33.3, 1, False, True),
    }
    assert people["name:Cy"]["segments"][0] == {
        "participantSessionId": "cy-laptop",
        "joinedAt": "2026-04-01T14:40:00.000Z",
        "leftAt": "2026-04-01T15:00:00.000Z",
        "inferred": True,
    }

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert list(rows[0]) == [
        "participantKey", "name", "email", "externalUserId", "firstJoinAt", "lastLeftAt",
        "attendedSeconds", "attendancePercent", "joinCount", "present", "inferred", "status", "host",
        "firstJoinLocal", "lastLeftLocal", "timeZone",
    ]  # fmt: skip
    assert [
        (r["participantKey"], r["attendedSeconds"], r["present"], r["inferred"], r["status"]) for r in rows
    ] == [
        ("email:bob@example.com", "2680.0", "true", "false", "guest"),  # no roster: all guests
        ("ext:u-ann", "3600.0", "true", "false", "guest"),
        ("name:Cy", "1200.0", "false", "true", "guest"),
    ]


def test_meetings_whose_webhooks_name_no_session_are_told_apart_when_starts_and_ends_come_last(
    live_app: Callable[..., Any], emulator: RunningEmulator
) -> None:
    """Two meetings in one room, no meetingSessionId anywhere, their starts and ends delivered last."""
    unnamed = {"omitMeetingSessionId": True}
    people = [
        {"event": "join", "time": minute(65), "participantSessionId": "bo-1", "name": "Bo", **unnamed},
        {"event": "join", "time": minute(5), "participantSessionId": "ann-1", "name": "Ann", **unnamed},
        {"event": "leave", "time": minute(85), "participantSessionId": "bo-1", **unnamed},
        {"event": "leave", "time": minute(25), "participantSessionId": "ann-1", **unnamed},
    ]
    marks = [
        {"event": "end", "time": minute(90), **unnamed},
        {"event": "start", "time": minute(60), **unnamed},
        {"event": "end", "time": minute(30), **unnamed},
        {"event": "start", "time": minute(0), **unnamed},
    ]
    settings = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET}
    with live_app(**settings) as (app, base_url):
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        assert api.post("/api/rooms", json={"roomName": "unnamed-room"}).status_code == 201
        runtime = runtime_of(app)
        process.install(runtime)
        # The people first, folded before any start or end is known; then the starts and ends.
        assert {d.status for d in play_meeting(emulator.room("unnamed-room"), people)} == {202}
        run_worker(runtime)
        before = api.get("/api/rooms/unnamed-room/sessions").json()["items"]
        assert [s["meetingSessionId"].rsplit("-", 1)[1] for s in before] == ["first"]  # one stretch so far
        assert {d.status for d in play_meeting(emulator.room("unnamed-room"), marks)} == {202}
        run_worker(runtime)
        with runtime.Db() as db:
            room_id = db.scalars(select(Room.id).where(Room.room_name == "unnamed-room")).one()
        sessions = api.get("/api/rooms/unnamed-room/sessions").json()["items"]
        attendance = {
            s["meetingSessionId"]: [
                (p["name"], p["attendedSeconds"])
                for p in api.get(f"/api/sessions/{s['meetingSessionId']}").json()["attendance"]
            ]
            for s in sessions
        }
    assert [(s["startedAt"], s["endedAt"], s["status"]) for s in sessions] == [
        ("2026-04-01T15:00:00.000Z", "2026-04-01T15:30:00.000Z", "ended"),
        ("2026-04-01T14:00:00.000Z", "2026-04-01T14:30:00.000Z", "ended"),
    ]
    assert attendance == {
        f"room-{room_id}-20260401T150000.000Z": [("Bo", 1200.0)],
        f"room-{room_id}-20260401T140000.000Z": [("Ann", 1200.0)],
    }
