"""Benchmark: one GET /metrics with a large deliveries table, against the queries a scrape used to run.

Run as `python -m bench.metrics` (part of `make bench`). BENCH_METRICS_DELIVERIES rows (default 300,000;
the issue saw 1.5 M) are written by the database itself. The baseline, measured in the same run on the
same table, is the GROUP BYs the old /metrics ran on every scrape; the scrape now runs no query at all.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, String, case, cast, func, insert, literal, select

from bench import services
from webhooks import create_app
from workers.models import Delivery
from workers.models.notifications import Notification
from workers.runtime.connections import make_engine
from workers.runtime.settings import Settings

DELIVERIES = int(os.environ.get("BENCH_METRICS_DELIVERIES", 300_000))
EVENTS = ("participant-joined", "participant-left", "meeting-started", "meeting-ended")


def fill(engine: Engine, room_id: int, count: int) -> None:
    """Insert `count` processed deliveries (one in a thousand still queued) with one INSERT ... SELECT."""
    numbers = select(literal(1).label("i")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.i + 1).where(numbers.c.i < count))
    i = numbers.c.i
    values = {
        "room_id": literal(room_id),
        "event": case(*((i % 4 == n, event) for n, event in enumerate(EVENTS))),
        "dedupe_key": literal("bench-") + cast(i, String),
        "raw_body": literal("{}"),
        "content_type": literal("application/json"),
        "headers": literal({}, Delivery.headers.type),
        "received_at": literal(datetime.now(UTC), Delivery.received_at.type),
        "status": case((i % 1000 == 0, "queued"), else_="processed"),
        "duplicate_count": i % 3,
        "fold_count": literal(1),
    }
    query = insert(Delivery).from_select(list(values), select(*values.values()))
    with engine.begin() as connection:
        connection.execute(query)


def old_scrape_queries(engine: Engine) -> None:
    """Run the queries every scrape ran before: counts by event and status, duplicates, lag, notifications."""
    unprocessed = Delivery.status.in_(("received", "queued"))
    with engine.connect() as connection:
        connection.execute(
            select(Delivery.event, Delivery.status, func.count()).group_by(Delivery.event, Delivery.status)
        ).all()
        connection.execute(
            select(Delivery.event, func.sum(Delivery.duplicate_count)).group_by(Delivery.event)
        ).all()
        connection.scalar(select(func.min(Delivery.received_at)).where(unprocessed))
        connection.execute(
            select(Notification.kind, Notification.state, func.count()).group_by(
                Notification.kind, Notification.state
            )
        ).all()


def median_seconds(run: Callable[[], object], times: int) -> float:
    """Return the median wall time of `times` runs of `run`."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def compare(database_url: str, redis_url: str, label: str) -> None:
    """Fill the table, then time the old queries and a whole GET /metrics, and print both."""
    room_id, _ = services.make_room(database_url)
    engine = make_engine(database_url)
    started = time.perf_counter()
    fill(engine, room_id, DELIVERIES)
    filled = time.perf_counter() - started
    app = create_app(Settings(_env_file=None, database_url=database_url, redis_url=redis_url))
    client = app.test_client()
    assert client.get("/metrics").status_code == 200
    old = median_seconds(lambda: old_scrape_queries(engine), 5)
    new = median_seconds(lambda: client.get("/metrics"), 50)
    print(
        f"  {label}, {DELIVERIES:,} deliveries (written in {filled:.1f} s): "
        f"GET /metrics {new * 1000:.2f} ms; the old scrape's queries alone {old * 1000:.0f} ms "
        f"= {old / new:,.0f}x the whole scrape"
    )
    engine.dispose()


def main() -> None:
    """Run the comparison on SQLite and, if reachable, PostgreSQL."""
    print("\n/metrics with a large deliveries table (baseline: the GROUP BYs each scrape used to run):")
    with services.redis_server() as redis_url:
        with services.sqlite_database() as sqlite_url:
            compare(sqlite_url, redis_url, "SQLite")
        with services.postgres_database() as postgres_url:
            if postgres_url:
                compare(postgres_url, redis_url, "PostgreSQL")


if __name__ == "__main__":
    main()
