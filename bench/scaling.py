"""Scaling: does one worker fold a big meeting as fast per delivery as a small one? (issue 12's "before")

For each size, one meeting session of that many people (a join and a leave each, shuffled, a quarter of
them delivered twice) is stored as the receiver would store it, then one `python -m workers --burst`
process drains it. Once with the meeting's start and end webhooks, once without; on SQLite and PostgreSQL,
each cell on a fresh database and Redis. A cell that is not folded within BENCH_SCALING_TIMEOUT seconds
(default 120) is stopped and reported as such. BENCH_SCALING_SIZES (default 1000,5000,10000,20000) picks
the sizes, e.g. BENCH_SCALING_SIZES=1000,5000 for a quick run.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from redis import Redis
from sqlalchemy import Table
from sqlalchemy.orm import Session

from bench import drain, services
from workers import inbox
from workers.bulk_write import insert_rows
from workers.deliveries.parsing import parse_delivery
from workers.models import Delivery
from workers.models.base import utcnow
from workers.runtime.connections import make_engine
from workers.timefmt import iso_ms

SIZES = [int(size) for size in os.environ.get("BENCH_SCALING_SIZES", "1000,5000,10000,20000").split(",")]
TIMEOUT = float(os.environ.get("BENCH_SCALING_TIMEOUT", 120))
DUPLICATE_SHARE = 0.25
MEETING = "bench-scaling"
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
# Issue 12's goals: the rate at the largest size within 1.3x of the rate at 1,000 people; at 10,000 people
# at least this many deliveries a second.
SLOWDOWN_GOAL = 1.3
GOAL_PEOPLE = 10_000
RATE_GOALS = {"SQLite": 5_000, "PostgreSQL": 3_000}
DATABASES: dict[str, Callable[[], AbstractContextManager[str | None]]] = {
    "SQLite": services.sqlite_database,
    "PostgreSQL": services.postgres_database,
}


@dataclass(frozen=True)
class Cell:
    database: str
    bounds: bool  # with the meeting's start and end webhooks
    people: int
    stored: int  # rows: each delivery once, its duplicates counted on it
    drained: drain.Drained | None  # None: not folded within TIMEOUT
    note: str = ""


def deliveries(people: int, bounds: bool, shuffle: random.Random) -> list[tuple[str, bytes]]:
    """Return (event, body) pairs of one meeting: a join and a leave each, duplicates, in shuffled order."""
    facts: list[tuple[str, dict[str, object]]] = []
    for person in range(people):
        who = {"participantSessionId": f"ps-{person}", "externalUserId": f"user-{person}"}
        joined = T0 + timedelta(seconds=person % 3_600)
        left = joined + timedelta(minutes=10 + person % 60)
        facts.append(("participant-joined", {**who, "name": f"Person {person}", "joinTime": iso_ms(joined)}))
        facts.append(("participant-left", {**who, "leftTime": iso_ms(left)}))
    facts += shuffle.sample(facts, int(len(facts) * DUPLICATE_SHARE))
    shuffle.shuffle(facts)
    if bounds:
        facts.insert(0, ("meeting-started", {"startTime": iso_ms(T0 - timedelta(minutes=1))}))
        facts.append(("meeting-ended", {"endTime": iso_ms(T0 + timedelta(hours=3))}))
    return [(event, json.dumps({"meetingSessionId": MEETING, **body}).encode()) for event, body in facts]


def stored_rows(room_id: int, items: list[tuple[str, bytes]], received_at: datetime) -> list[dict[str, Any]]:
    """Return the inbox rows the receiver would leave for `items`: each once, its duplicates counted."""
    rows: dict[str, dict[str, Any]] = {}
    for event, body in items:
        facts = parse_delivery(event, body, "application/json", received_at)
        arrival = inbox.Arrival(
            room_id, facts, body.decode(), "application/json", _headers(body), "127.0.0.1", received_at
        )
        values = inbox._values(arrival)  # the receiver's own row, so the backlog is the one it would leave
        kept = rows.setdefault(facts.dedupe_key, values)
        if kept is not values:
            kept["duplicate_count"] += 1
    return list(rows.values())


def _headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "Content-Length": str(len(body)), "User-Agent": "Metered"}


def store(database_url: str, room_id: int, items: list[tuple[str, bytes]]) -> int:
    """Store `items` in one transaction as the receiver would have, one by one; return the rows stored."""
    rows = stored_rows(room_id, items, utcnow())
    engine = make_engine(database_url)
    try:
        with Session(engine) as db, db.begin():
            insert_rows(db, cast(Table, Delivery.__table__), rows)
    finally:
        engine.dispose()
    return len(rows)


def cell(database: str, database_url: str, redis_url: str, people: int, bounds: bool) -> Cell:
    """Store one meeting of `people` and time one worker draining it."""
    Redis.from_url(redis_url).flushdb()  # each cell's room ids start again on a fresh database
    room_id, _ = services.make_room(database_url, f"scaling-{people}", f"scaling-metered-{people}")
    stored = store(database_url, room_id, deliveries(people, bounds, random.Random(people)))
    try:
        drained = drain.drain_stored(database_url, redis_url, [room_id], stored, timeout=TIMEOUT)
    except drain.TimedOut as error:
        return Cell(database, bounds, people, stored, None, f"stopped: {error}")
    return Cell(database, bounds, people, stored, drained)


def run() -> Iterator[Cell]:
    """Yield every cell: each database, with and without the meeting's bounds, each size."""
    with services.redis_server() as redis_url:
        for database, fresh_database in DATABASES.items():
            for bounds in (True, False):
                for people in SIZES:
                    with fresh_database() as url:
                        if url is None:
                            break
                        yield cell(database, url, redis_url, people, bounds)


def print_cell(result: Cell) -> None:
    """Print one cell's line."""
    drained = result.drained
    figure = f"{'> ' + format(TIMEOUT, '.0f') + ' s':>8}  {result.note}"
    if drained:
        figure = (
            f"{drained.rate:8.0f} deliveries/s  "
            f"({drained.seconds:5.1f} s folding, {drained.wall_seconds:5.1f} s wall)"
        )
    label = f"{result.database:10} {_bounds(result.bounds):24}"
    print(f"  {label} {result.people:7,d} {result.stored:7,d}  {figure}")


def summarise(cells: list[Cell]) -> None:
    """Print, per database and variant, the slowdown from 1,000 people to the largest size, and the goals."""
    sqlite_goal, postgres_goal = RATE_GOALS["SQLite"], RATE_GOALS["PostgreSQL"]
    print(
        f"\n  goals: rate at the largest size within {SLOWDOWN_GOAL}x of the rate at 1,000 people; at "
        f"{GOAL_PEOPLE:,} people >= {sqlite_goal:,}/s (SQLite), >= {postgres_goal:,}/s (PostgreSQL)"
    )
    for database in DATABASES:
        for bounds in (True, False):
            row = {c.people: c for c in cells if c.database == database and c.bounds == bounds}
            if row:
                print(f"  {database:10} {_bounds(bounds):24} {_slowdown(row)};  {_rate_goal(database, row)}")


def _slowdown(row: dict[int, Cell]) -> str:
    smallest, largest = row.get(1_000), row[max(row)]
    if smallest is None or smallest.drained is None or largest is smallest:
        return "slowdown: not measured (needs 1,000 people and a larger size)"
    if largest.drained is None:
        return f"slowdown at {largest.people:,}: > {TIMEOUT:.0f} s, MISSED"
    ratio = smallest.drained.rate / largest.drained.rate
    verdict = "met" if ratio <= SLOWDOWN_GOAL else "MISSED"
    return f"rate at {largest.people:,} / rate at 1,000 = {1 / ratio:.2f} (slowdown {ratio:.2f}x) {verdict}"


def _rate_goal(database: str, row: dict[int, Cell]) -> str:
    goal, measured = RATE_GOALS[database], row.get(GOAL_PEOPLE)
    if measured is None:
        return f"{GOAL_PEOPLE:,} people: not measured"
    if measured.drained is None:
        return f"at {GOAL_PEOPLE:,}: > {TIMEOUT:.0f} s, MISSED"
    rate = measured.drained.rate
    return f"at {GOAL_PEOPLE:,}: {rate:,.0f}/s vs >= {goal:,}/s {'met' if rate >= goal else 'MISSED'}"


def _bounds(bounds: bool) -> str:
    return "with start/end webhooks" if bounds else "joins and leaves only"


def main() -> None:
    """Run every cell, printing each as it finishes, then the goals."""
    sizes = ", ".join(f"{size:,}" for size in SIZES)
    print(f"\nScaling: one worker drains one meeting session of {sizes} people ({_load()}):")
    print(f"  {'database':10} {'webhooks':24} {'people':>7} {'rows':>7}")
    cells = []
    for result in run():
        print_cell(result)
        cells.append(result)
    summarise(cells)
    print(f"  ({_load()} at the end)")


def _load() -> str:
    # The machine is shared: the load average says how much of it the run had.
    return "load average " + ", ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    main()
