"""End to end, hostile: odd but valid deliveries, refused ones, a hanging mail server and a Redis outage at
worker start-up, all mixed into an ordinary meeting. Every valid delivery must end folded, every page and
download must answer, and nothing may answer 5xx."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from devtools.emulator_meeting import play_meeting
from tests.conftest import API_TOKEN, WorkerProcess
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from tests.test_jobs import wait_for
from tests.test_notify_worker import stalled_smtp
from tests.test_worker_outages import WAITING
from webhooks import runtime_of
from workers.models import Delivery, MeetingSession

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ORDINARY = "6650a1b2c3d4e5f6a7b8c9d0"
MONTH_LONG = "month-long-course"
LONG_IDS = "m" * 200
SLASHED = "course/2026/week 1"
ODD = "wk\r\nünï%2F"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def ordinary_meeting(people: int) -> list[dict[str, Any]]:
    """Starts, joins, leaves and an end, with duplicates and steps delivered out of order."""
    m = {"meetingSessionId": ORDINARY}
    steps: list[dict[str, Any]] = [{"event": "start", "time": at(0), **m}]
    for i in range(people):
        person = {"participantSessionId": f"ps-{i}", "externalUserId": f"u-{i}", "name": f"P {i}"}
        steps.append({"event": "join", "time": at(i), "duplicate": i % 3, **person, **m})
        steps.append({"event": "leave", "time": at(30 + i), "reorder": i % 2 == 0, **person, **m})
    steps.append({"event": "end", "time": at(60), "duplicate": 1, **m})
    return steps


def short_meeting(meeting: str, person: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    m = {"meetingSessionId": meeting}
    who = {"participantSessionId": person, "externalUserId": person, "name": "Odd Person"}
    return [
        {"event": "start", "time": start.isoformat(), **m},
        {"event": "join", "time": start.isoformat(), **who, **m},
        {"event": "leave", "time": end.isoformat(), **who, **m},
        {"event": "end", "time": end.isoformat(), **m},
    ]


def strict_json(text: str) -> Any:
    """Parse JSON as a strict client would: Infinity and NaN are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_hostile_traffic_ends_folded_with_every_page_answering(
    live_app: Callable[..., Any],
    emulator: RunningEmulator,
    database_url: str,
    own_redis: Any,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    statuses: list[int] = []
    with stalled_smtp() as smtp:
        mail = {"SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "MAIL_FROM": "rollcall@example.com"}
        # Redis is not running yet: the worker must wait for it rather than exit.
        worker = spawn_worker(
            database_url,
            own_redis.url,
            FINALIZE_AFTER_SECONDS="0",
            NOTIFY_TIMEOUT_SECONDS="1",
            **mail,
        )
        wait_for(lambda: worker.lines(WAITING), "the worker to say it waits for Redis")
        settings = {
            "metered_api_url": emulator.url,
            "metered_secret_key": EMULATOR_SECRET,
            "redis_url": own_redis.url,
            "smtp_url": mail["SMTP_URL"],
            "mail_from": mail["MAIL_FROM"],
        }
        with live_app(**settings) as (app, base_url):
            api = httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=20
            )
            room = {
                "roomName": "hostile-room",
                "organizerEmail": "org@example.com",
                "notifyParticipants": True,
                "trustParticipantEmails": True,
            }
            created = api.post("/api/rooms", json=room)
            assert created.status_code == 201, created.text
            metered_room = emulator.room("hostile-room")

            def play(steps: list[dict[str, Any]]) -> list[int]:
                answers = [d.status or 0 for d in play_meeting(metered_room, steps)]
                statuses.extend(answers)
                return answers

            # Ordinary traffic, with the odd deliveries shuffled in among its steps.
            odd_meetings = [
                short_meeting(MONTH_LONG, "month-1", T0, T0 + timedelta(days=29)),
                short_meeting(LONG_IDS, "p" * 200, T0 + timedelta(hours=2), T0 + timedelta(hours=3)),
                short_meeting(SLASHED, "slash/1", T0 + timedelta(hours=4), T0 + timedelta(hours=5)),
                short_meeting(ODD, "odd-1", T0 + timedelta(hours=6), T0 + timedelta(hours=7)),
            ]
            random.Random(11).shuffle(odd_meetings)
            ordinary = ordinary_meeting(24)
            for index, odd_meeting in enumerate(odd_meetings):
                assert set(play(ordinary[index * 12 : (index + 1) * 12])) <= {200, 202}
                assert set(play(odd_meeting)) == {202}
            assert set(play(ordinary[48:])) <= {200, 202}

            refused = [
                # Nested far deeper than the receiver keeps: refused at the door, never stored.
                {"event": "join", "participantSessionId": "deep", "meta": nested(200), "time": at(5)},
                # A time no Metered clock gives: refused, naming the field.
                {"event": "join", "participantSessionId": "far", "time": "2150-01-01T00:00:00Z"},
            ]
            for step in refused:
                assert play([{**step, "meetingSessionId": ORDINARY}])[0] in (400, 422)
            deep_but_fine = {"participantSessionId": "deep-ok", "meta": nested(20), "time": at(6)}
            assert play([{"event": "join", "meetingSessionId": ORDINARY, **deep_but_fine}]) == [202]

            runtime = runtime_of(app)
            with runtime.Db() as db:
                assert (db.scalar(select(func.count()).select_from(Delivery)) or 0) > 0
                assert set(db.scalars(select(Delivery.status).distinct())) <= {"received", "queued"}

            own_redis()  # Redis comes up: the waiting worker relays and folds everything stored

            def settled() -> bool:
                with runtime.Db() as db:
                    fates = set(db.scalars(select(Delivery.status).distinct()))
                    open_sessions = db.scalar(
                        select(func.count())
                        .select_from(MeetingSession)
                        .where(MeetingSession.status != "final")
                    )
                return fates == {"processed"} and open_sessions == 0

            wait_for(settled, "every delivery folded and every session final", seconds=120)
            assert worker.alive()

            sessions = api.get("/api/rooms/hostile-room/sessions", params={"limit": 500})
            statuses.append(sessions.status_code)
            ids = {s["meetingSessionId"] for s in sessions.json()["items"]}
            assert ids == {ORDINARY, MONTH_LONG, LONG_IDS, SLASHED, ODD}

            pages = httpx.Client(base_url=base_url, auth=("anyone", API_TOKEN), timeout=20)
            answers: dict[str, Any] = {}
            for meeting in ids:
                path = quote(meeting, safe="")
                session = api.get(f"/api/sessions/{path}")
                downloads = [
                    api.get(f"/api/sessions/{path}/attendance"),
                    api.get(f"/api/sessions/{path}/attendance", params={"format": "csv"}),
                    api.get(f"/api/sessions/{path}/history"),
                    pages.get(f"/sessions/{path}"),
                ]
                statuses.extend([session.status_code, *(d.status_code for d in downloads)])
                assert [session.status_code, *(d.status_code for d in downloads)] == [200] * 5, meeting
                answers[meeting] = (strict_json(session.text), downloads[1].text)
                for person in answers[meeting][0]["attendance"]:
                    key = quote(person["participantKey"], safe="")
                    across = api.get(f"/api/people/{key}/attendance")
                    statuses.append(across.status_code)
                    assert across.status_code == 200, person["participantKey"]
            room_page = pages.get("/rooms/hostile-room")
            statuses.append(room_page.status_code)
            assert room_page.status_code == 200

            cursor: str | None = None
            events = 0
            while True:
                listed = api.get(
                    "/api/events", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                )
                statuses.append(listed.status_code)
                page = strict_json(listed.text)
                events += len(page["items"])
                cursor = page["nextCursor"]
                if not cursor:
                    break
            with runtime.Db() as db:
                assert events == db.scalar(select(func.count()).select_from(Delivery))
                notified = db.scalar(select(MeetingSession.notifications_planned_at).limit(1))
            assert notified is not None  # the summaries were planned while the mail server hung
            wait_for(lambda: smtp.accepted >= 1, "the notify process to try the hanging mail server")

    assert all(status < 500 for status in statuses), sorted(set(statuses))

    month = answers[MONTH_LONG][0]
    assert month["durationSeconds"] == 29 * 86400
    assert [p["attendedSeconds"] for p in month["attendance"]] == [29 * 86400]
    long_ids = answers[LONG_IDS][0]
    assert [s["participantSessionId"] for p in long_ids["attendance"] for s in p["segments"]] == ["p" * 200]
    for meeting in (SLASHED, ODD):
        rows = list(csv.DictReader(io.StringIO(answers[meeting][1])))
        assert [r["attendedSeconds"] for r in rows] == ["3600.0"], meeting
    played = answers[ORDINARY][0]
    assert played["participantCount"] == 25  # 24 people and the deep-but-fine join
    assert {p["attendedSeconds"] for p in played["attendance"] if p["name"]} == {1800.0}
