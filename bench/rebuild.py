"""Benchmark: rebuild a 10,000-person, 100,000-delivery meeting session from its stored deliveries.

Run as `python -m bench.rebuild` (part of `make bench`). The deliveries are stored as the receiver stores
them, fact columns and all. Each measurement runs in a fresh process so its peak RSS is its own. The
baseline, measured in the same run, is reading every delivery's fact columns (what a rebuild that merged
delivery by delivery would read; it used to fetch the raw bodies too, which no rebuild reads any more).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from bench import services
from workers.deliveries.parsing import parse_delivery
from workers.deliveries.stored import FACT_COLUMNS, fact_values
from workers.models import Delivery, DeliveryStatus, MeetingSession, Room
from workers.rooms import new_token, token_hash
from workers.runtime.connections import make_engine, make_sessionmaker
from workers.timefmt import iso_ms

PEOPLE = int(os.environ.get("BENCH_REBUILD_PEOPLE", 10_000))
STAYS = 5  # participant sessions per person: 2 deliveries each, so 10 per person
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


def deliveries(room_id: int, session_id: int, msid: str) -> list[dict[str, object]]:
    """Return the rows of a long meeting: reconnects, overlapping stays (two devices), renamed people."""
    rows = [_row(room_id, session_id, "meeting-started", {"startTime": iso_ms(T0)}, msid)]
    for person in range(PEOPLE):
        for stay in range(STAYS):
            psid = f"{person:06d}{stay:02d}"
            joined = T0 + timedelta(minutes=stay * 20 + person % 7, seconds=person % 50)
            left = joined + timedelta(minutes=15 + (person + stay) % 9)
            who = {
                "externalUserId": f"user-{person}",
                "name": f"Person {person}",
                "participantSessionId": psid,
            }
            joining = {**who, "joinTime": iso_ms(joined)}
            leaving = {**who, "leftTime": iso_ms(left), "joinTime": iso_ms(joined)}
            if person % 10 == 0:  # a tenth rename themselves mid-stay: join and leave disagree on the name
                leaving["name"] = f"person {person}"
            rows.append(_row(room_id, session_id, "participant-joined", joining, msid))
            rows.append(_row(room_id, session_id, "participant-left", leaving, msid))
    end = {"endTime": iso_ms(T0 + timedelta(hours=2))}
    rows.append(_row(room_id, session_id, "meeting-ended", end, msid))
    return rows


def _row(
    room_id: int, session_id: int, event: str, body: Mapping[str, object], msid: str
) -> dict[str, object]:
    raw_body = json.dumps({"meetingSessionId": msid, **body})
    # Stored as the receiver stores it: with the fields its parser read (a rebuild trusts them).
    facts = parse_delivery(event, raw_body.encode(), "application/json", T0)
    return {
        "room_id": room_id,
        "session_id": session_id,
        **fact_values(facts),
        "raw_body": raw_body,
        "content_type": "application/json",
        "received_at": T0,
        "status": DeliveryStatus.PROCESSED,
        "headers": {},
    }


def prepare(url: str) -> int:
    """Create the schema, a room, a session and its deliveries; return the session's id."""
    engine = make_engine(url)
    Session = make_sessionmaker(engine)
    with Session.begin() as db:
        room = Room(room_name="bench-room", webhook_token_hash=token_hash(new_token()))
        db.add(room)
        db.flush()
        meeting = MeetingSession(
            room_id=room.id, meeting_session_id="bench-session", reconnect_grace_seconds=30
        )
        db.add(meeting)
        db.flush()
        rows = deliveries(room.id, meeting.id, meeting.meeting_session_id)
        for start in range(0, len(rows), 10_000):
            db.execute(insert(Delivery), rows[start : start + 10_000])
        session_id = meeting.id
    engine.dispose()
    return session_id


def measure(url: str, session_id: int, what: str) -> dict[str, float]:
    """Run one measurement in a fresh process; return its seconds and peak RSS in MB."""
    output = subprocess.run(  # noqa: S603 - this interpreter, our own arguments
        [sys.executable, "-m", "bench.rebuild", "--child", what, url, str(session_id)],
        check=True,
        capture_output=True,
        text=True,
        cwd=services.PROJECT,
    ).stdout
    figures: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return figures


def child(what: str, url: str, session_id: int) -> None:
    """Time either reading every delivery's fact columns (baseline) or the whole rebuild, and print JSON."""
    from workers.folding import rebuild

    engine = make_engine(url)
    Session = make_sessionmaker(engine)
    started = time.perf_counter()
    with Session.begin() as db:
        if what == "read":
            query = select(*FACT_COLUMNS)
            rows = db.execute(
                query.where(Delivery.session_id == session_id).execution_options(yield_per=5000)
            )
            count = sum(1 for _ in rows)
        else:
            rebuild(db, db.get_one(MeetingSession, session_id))
            count = db.get_one(MeetingSession, session_id).participant_count
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": _peak_rss_mb(), "count": count}))


def _peak_rss_mb() -> float:
    # Linux carries a parent's ru_maxrss over into the child it execs, so on its own it would report the
    # benchmark's peak (100,000 prepared rows), not this process's. VmHWM belongs to this process alone.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource  # not on Windows

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Measure and print the rebuild benchmark on SQLite and (when reachable) PostgreSQL."""
    print(f"\nRebuild: {PEOPLE:,} people, {PEOPLE * STAYS * 2 + 2:,} deliveries, one session")
    for name, database in (("SQLite", services.sqlite_database), ("PostgreSQL", services.postgres_database)):
        with database() as url:
            if url is None:
                continue
            session_id = prepare(url)
            read = measure(url, session_id, "read")
            full = measure(url, session_id, "rebuild")
            print(
                f"  {name:10s} reading every delivery's facts (baseline) {read['seconds']:.2f} s | "
                f"rebuild {full['seconds']:.2f} s = {full['seconds'] / read['seconds']:.1f}x the baseline, "
                f"peak RSS {full['rss_mb']:.0f} MB, {full['count']:,} people  [goal: <= 2 s, <= 150 MB]"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
