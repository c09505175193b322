"""Retention: the periodic job purges raw bodies, headers and addresses older than RETENTION_DAYS, and only
those; facts, attendance and history stay. On SQLite and PostgreSQL, the job run by a real RQ worker.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from tests.conftest import run_worker
from tests.test_inbox import arrival, make_room
from workers import inbox, jobs
from workers.models import Delivery
from workers.runtime.process import Runtime

DAY = 86400
JOIN = '{"participantSessionId": "ps-%d", "meetingSessionId": "ms-1", "email": "p%d@example.org"}'


def stored(runtime: Runtime, index: int, days_ago: float) -> int:
    room_id = make_room(runtime, f"room-{index}")[0]
    return inbox.store(runtime.engine, arrival(room_id, JOIN % (index, index), age_seconds=days_ago * DAY)).id


def purge(runtime: Runtime, batch_size: int = jobs.PURGE_BATCH) -> None:
    runtime.queue().enqueue(jobs.purge_expired_bodies, batch_size)
    run_worker(runtime)


def test_bodies_past_retention_are_purged_and_their_facts_kept(start_runtime: Callable[..., Runtime]) -> None:
    runtime = start_runtime(retention_days=30)
    old, young = stored(runtime, 1, 31), stored(runtime, 2, 29)
    older = stored(runtime, 3, 400)
    purge(runtime, batch_size=1)  # one a transaction: the job goes on until none is left
    with runtime.Db() as db:
        first_purged_at = db.get_one(Delivery, old).redacted_at
    purge(runtime)  # again: nothing more to purge, and the purged row keeps its first mark
    with runtime.Db() as db:
        rows = {row.id: row for row in db.scalars(select(Delivery))}
    assert (rows[old].raw_body, rows[old].headers, rows[old].source_address) == ("", {}, None)
    assert rows[old].redaction == "retention" and rows[old].redacted_at == first_purged_at is not None
    assert (rows[old].email, rows[old].participant_session_id) == ("p1@example.org", "ps-1")  # facts stay
    assert rows[older].redaction == "retention"
    assert rows[young].raw_body == JOIN % (2, 2) and rows[young].headers == {"User-Agent": "t"}
    assert (rows[young].redacted_at, rows[young].redaction) == (None, None)


def test_without_retention_days_everything_is_kept(start_runtime: Callable[..., Runtime]) -> None:
    runtime = start_runtime()
    delivery_id = stored(runtime, 1, 3650)
    purge(runtime)
    with runtime.Db() as db:
        row = db.get_one(Delivery, delivery_id)
    assert row.raw_body == JOIN % (1, 1) and row.redacted_at is None
