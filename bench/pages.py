"""Benchmark: the HTML pages of big meeting sessions, fetched over real HTTP from gunicorn.

Run as `python -m bench.pages` (part of `make bench`). Rows are arranged directly in the database (the
pages read attendance rows, however they were folded): a 10,000-person session of five stays each (two
of them overlapping, a second device), a session where one person has 10,000 overlapping segments, and a
10-person session. The baselines, measured in the same run from the same server, are `/healthz` and the
10-person session's page. Each page is fetched a few times; the median is reported.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from bench import services
from webhooks.pages import ROWS_PER_PAGE
from workers.models import AttendanceRow, MeetingSession
from workers.runtime.connections import make_engine
from workers.timefmt import iso_ms

PEOPLE = int(os.environ.get("BENCH_PAGES_PEOPLE", 10_000))
ONE_PERSON_SEGMENTS = 10_000
STAYS = 5
FETCHES = 5
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
HOURS = 2
GOAL_MS = 2000
ROOM = "bench-room"


def _segment(psid: str, joined: datetime, left: datetime) -> dict[str, object]:
    return {
        "participantSessionId": psid,
        "joinedAt": iso_ms(joined),
        "leftAt": iso_ms(left),
        "inferred": False,
    }


def _stays(person: int) -> list[dict[str, object]]:
    # Five stays of 15-23 minutes, 20 minutes apart: each overlaps the next by a few minutes (two devices).
    stays = []
    for stay in range(STAYS):
        joined = T0 + timedelta(minutes=stay * 20 + person % 7, seconds=person % 50)
        stays.append(
            _segment(f"{person}-{stay}", joined, joined + timedelta(minutes=15 + (person + stay) % 9))
        )
    return stays


def _one_person_segments() -> list[dict[str, object]]:
    # 10,000 devices joining one after another over the meeting and all staying to its end: at the end
    # every one of them overlaps every other.
    step = timedelta(hours=HOURS) / ONE_PERSON_SEGMENTS
    end = T0 + timedelta(hours=HOURS)
    return [_segment(f"d-{n}", T0 + n * step, end) for n in range(ONE_PERSON_SEGMENTS)]


def _attendance(session_id: int, person: int, segments: list[dict[str, object]]) -> dict[str, object]:
    first = min(str(s["joinedAt"]) for s in segments)
    last = max(str(s["leftAt"]) for s in segments)
    return {
        "session_id": session_id,
        "participant_key": f"ext:user-{person:05d}",
        "identified_by": "externalUserId",
        "name": f"Person {person}",
        "email": f"person{person}@example.com",
        "external_user_id": f"user-{person:05d}",
        "first_join_at": datetime.fromisoformat(first),
        "last_left_at": datetime.fromisoformat(last),
        "attended_ms": 60 * 60 * 1000,
        "attendance_percent": 50.0,
        "join_count": STAYS,
        "present": True,
        "inferred": False,
        "segments": segments,
    }


def prepare(url: str) -> None:
    """Store the room and its three sessions with their attendance rows."""
    room_id, _ = services.make_room(url, ROOM)
    engine = make_engine(url)
    with engine.begin() as connection:
        ids = {
            msid: connection.execute(
                insert(MeetingSession).returning(MeetingSession.id),
                {
                    "room_id": room_id,
                    "meeting_session_id": msid,
                    "status": "final",
                    "started_at": T0,
                    "ended_at": T0 + timedelta(hours=HOURS),
                    "duration_ms": HOURS * 3600 * 1000,
                    "participant_count": people,
                    "peak_concurrency": people,
                },
            ).scalar_one()
            for msid, people in (("bench-big", PEOPLE), ("bench-one", 1), ("bench-small", 10))
        }
        rows = [_attendance(ids["bench-big"], person, _stays(person)) for person in range(PEOPLE)]
        rows += [_attendance(ids["bench-small"], person, _stays(person)) for person in range(10)]
        rows.append(_attendance(ids["bench-one"], 0, _one_person_segments()))
        for start in range(0, len(rows), 2000):
            connection.execute(insert(AttendanceRow), rows[start : start + 2000])
    engine.dispose()


def fetch(client: httpx.Client, path: str) -> tuple[float, int, int]:
    """Fetch `path` FETCHES times; return the median seconds, the status and the size of the page."""
    seconds = []
    for _ in range(FETCHES):
        started = time.perf_counter()
        answer = client.get(path)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer.status_code, len(answer.content)


def pages() -> Iterator[tuple[str, str]]:
    """Yield (label, path) of every page measured, the baselines first."""
    yield "/healthz (baseline)", "/healthz"
    yield "10-person session page (baseline)", "/sessions/bench-small"
    yield f"{PEOPLE:,}-person session page", "/sessions/bench-big"
    yield "  its last page of people", f"/sessions/bench-big?page={-(-PEOPLE // ROWS_PER_PAGE)}"
    yield f"1 person, {ONE_PERSON_SEGMENTS:,} overlapping segments", "/sessions/bench-one"
    yield "room page", f"/rooms/{ROOM}"


def main() -> None:
    """Measure and print every page on SQLite and (when reachable) PostgreSQL."""
    print(f"\nHTML pages over HTTP (gunicorn as the Procfile runs it, median of {FETCHES} fetches):")
    for name, database in (("SQLite", services.sqlite_database), ("PostgreSQL", services.postgres_database)):
        with database() as url, services.redis_server() as redis_url:
            if url is None:
                continue
            prepare(url)
            env = services.service_env(url, redis_url)
            with (
                services.gunicorn("wsgi:app", env) as port,
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", auth=("bench", "bench"), timeout=120
                ) as client,
            ):
                report(name, [(label, *fetch(client, path)) for label, path in pages()])


def report(database: str, results: list[tuple[str, float, int, int]]) -> None:
    """Print each page's time, its ratio to both baselines, its status and size."""
    healthz, small = results[0][1], results[1][1]
    print(f"  {database}")
    print(f"    {'':40} {'ms':>7} {'x healthz':>10} {'x 10-person':>12} {'status':>7} {'KiB':>6}")
    for label, seconds, status, size in results:
        print(
            f"    {label:40} {seconds * 1000:7.1f} {seconds / healthz:10.1f} {seconds / small:12.1f} "
            f"{status:7d} {size / 1024:6.0f}"
        )
    print(f"    goal: every page under {GOAL_MS} ms")


if __name__ == "__main__":
    main()
