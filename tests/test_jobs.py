"""Draining rooms on real RQ workers: batches, poison deliveries, Redis outages and killed workers."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from rq.job import Job
from sqlalchemy import create_engine, func, select, text

from tests.conftest import WorkerProcess, run_worker
from tests.test_inbox import arrival, make_room
from webhooks import runtime_of
from workers import inbox, jobs, locks, queueing
from workers.locks import LEASE_SECONDS, room_lock
from workers.models import Delivery, MeetingSession, ParticipantSession
from workers.runtime import metrics, process
from workers.runtime.process import Runtime


def join_body(index: int, meeting: str = "ms-1") -> str:
    body = {
        "participantSessionId": f"ps-{index}",
        "meetingSessionId": meeting,
        "joinTime": 1714557600 + index,
    }
    return json.dumps(body)


def store_joins(runtime: Runtime, room_id: int, count: int, first: int = 0) -> None:
    for index in range(first, first + count):
        inbox.store(runtime.engine, arrival(room_id, join_body(index)))


def fates(runtime: Runtime) -> dict[str, int]:
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    with runtime.Db() as db:
        return {status: count for status, count in db.execute(query)}


def fold_counts(runtime: Runtime) -> set[int]:
    with runtime.Db() as db:
        return set(db.scalars(select(Delivery.fold_count)))


# FOLD_BATCH_SIZE of these tests' workers: a few hundred deliveries make two batches, whatever the default.
BATCH = 100


@pytest.fixture
def worker_runtime(start_runtime: Callable[..., Runtime]) -> Runtime:
    """Return an installed Runtime folding BATCH at a time: jobs run in this process, on the test database."""
    return start_runtime(fold_batch_size=BATCH)


def test_a_drain_folds_every_delivery_of_its_room_in_batches(
    worker_runtime: Runtime, redis_client: Redis
) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_joins(runtime, room_id, BATCH + 50)
    assert queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    assert not queueing.signal_room(runtime.redis, runtime.queue(), room_id)  # coalesced: one job
    run_worker(runtime)
    assert fates(runtime) == {"processed": BATCH + 50}
    assert fold_counts(runtime) == {1}
    assert not queueing.is_pending(redis_client, room_id)


POISON = "participant-joined:ms-1:poison"


def store_with_poison(runtime: Runtime, room_id: int) -> None:
    """Store ten joins with, between them, one whose key is POISON."""
    store_joins(runtime, room_id, 5)
    inbox.store(
        runtime.engine, arrival(room_id, '{"participantSessionId": "poison", "meetingSessionId": "ms-1"}')
    )
    store_joins(runtime, room_id, 5, first=5)


def drain_once(runtime: Runtime, room_id: int) -> Job:
    """Signal the room as the receiver does (with the drain's own retries) and run one burst of a worker.

    The worker runs no scheduler: a retry of the drain would still be waiting when it returns.
    """
    assert queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    run_worker(runtime)
    return Job.fetch(queueing.DRAIN_JOB_ID, connection=runtime.redis)


def failed_deliveries(runtime: Runtime) -> list[tuple[str, str]]:
    """Return the key and reason of each failed delivery (columns: a corrupt row cannot load whole)."""
    query = select(Delivery.dedupe_key, Delivery.status_reason).where(Delivery.status == "failed")
    with runtime.Db() as db:
        return [(key, reason or "") for key, reason in db.execute(query)]


def test_a_delivery_the_database_refuses_fails_alone_in_the_first_run(worker_runtime: Runtime) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_with_poison(runtime, room_id)
    with poisoned(runtime, POISON):
        job = drain_once(runtime, room_id)
    assert job.get_status() == "finished"
    assert fates(runtime) == {"processed": 10, "failed": 1}
    assert fold_counts(runtime) == {0, 1}  # the failed one was never folded, the others once
    [(key, reason)] = failed_deliveries(runtime)
    assert key == POISON
    assert "poisoned delivery" in reason
    assert "test-metered-secret" not in reason
    with runtime.Db() as db:
        attended = db.scalars(select(ParticipantSession.participant_session_id)).all()
    assert sorted(attended) == sorted(f"ps-{index}" for index in range(10))


def test_a_row_that_cannot_be_read_fails_alone_in_the_first_run(
    worker_runtime: Runtime, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's timestamp columns refuse what is not a time")
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_with_poison(runtime, room_id)
    with runtime.engine.begin() as connection:  # what a bad restore or a hand edit can leave behind
        connection.execute(
            text("UPDATE deliveries SET event_time = 'half past nine' WHERE dedupe_key = :key"),
            {"key": POISON},
        )
    assert drain_once(runtime, room_id).get_status() == "finished"
    assert fates(runtime) == {"processed": 10, "failed": 1}
    [(key, reason)] = failed_deliveries(runtime)
    assert key == POISON
    assert "half past nine" in reason


def test_a_schema_behind_the_code_leaves_the_batch_for_the_retry(
    worker_runtime: Runtime, redis_client: Redis
) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_joins(runtime, room_id, 10)
    # PostgreSQL: ProgrammingError (no such column); SQLite: OperationalError. Neither is the deliveries'.
    with column_renamed(runtime, "meeting_sessions", "closed_by_sweeper"):
        assert drain_once(runtime, room_id).get_status() == "scheduled"  # RQ's retry
        assert fates(runtime) == {"queued": 10}
    runtime.queue().enqueue(jobs.relay, 0)  # the retry's work, done now
    run_worker(runtime)
    assert fates(runtime) == {"processed": 10}


def test_a_fold_whose_counting_fails_still_schedules_its_finalize(
    worker_runtime: Runtime, redis_client: Redis
) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    for index, event in enumerate(["meeting-started", "participant-joined", "meeting-ended"]):
        body = {"meetingSessionId": "ms-1", "participantSessionId": "ps-0", "joinTime": 1714557600 + index}
        inbox.store(runtime.engine, arrival(room_id, json.dumps(body), event=event))
    redis_client.set(metrics.FOLDED_KEY, "not a hash")  # every HINCRBY on it fails (WRONGTYPE)
    assert drain_once(runtime, room_id).get_status() == "finished"
    assert fates(runtime) == {"processed": 3}
    with runtime.Db() as db:
        meeting_id = db.scalars(select(MeetingSession.id)).one()
    assert runtime.queue().scheduled_job_registry.get_job_ids() == [f"finalize-{meeting_id}"]


@pytest.mark.slow
def test_redis_stopped_during_deliveries_then_the_relay_catches_up(
    live_app: Callable[..., Any], own_redis: Any
) -> None:
    server = own_redis()
    with live_app(redis_url=own_redis.url) as (app, base_url):
        runtime = runtime_of(app)
        process.install(runtime)
        _, token = make_room(runtime)
        url = f"{base_url}/hooks/metered/{token}/participant-joined"
        assert (
            httpx.post(url, content=join_body(0), headers={"Content-Type": "application/json"}).status_code
            == 202
        )
        run_worker(runtime)
        server.kill()
        server.wait()
        answers = [
            httpx.post(url, content=join_body(index), headers={"Content-Type": "application/json"})
            for index in range(1, 11)
        ]
        assert [answer.status_code for answer in answers] == [202] * 10
        assert fates(runtime) == {"processed": 1, "received": 10}
        own_redis()  # back, and empty: whatever was queued is gone
        runtime.queue().enqueue(jobs.relay, 0)  # what the worker's periodic relay enqueues
        run_worker(runtime)
        assert fates(runtime) == {"processed": 11}
        assert fold_counts(runtime) == {1}


@pytest.mark.slow
def test_a_worker_killed_mid_job_leaves_every_delivery_processed_once(
    worker_runtime: Runtime,
    database_url: str,
    redis_url: str,
    redis_client: Redis,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_joins(runtime, room_id, BATCH + 500)
    queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    lock_key = locks.lock_key(room_id)
    with database_held(database_url, room_id, skip=BATCH):
        worker = spawn_worker(database_url, redis_url, FOLD_BATCH_SIZE=str(BATCH))
        wait_for(lambda: redis_client.exists(lock_key), "the drain to start")
        if database_url.startswith("postgresql"):
            wait_for(lambda: fates(runtime).get("processed") == BATCH, "the first batch to commit")
        # Holding the room's lock, the drain is inside its job, and cannot finish while the rows are held.
        worker.kill()
    assert fates(runtime).get("queued", 0) >= 500
    # No wait for the dead worker's lock: its lease lapses in seconds, and the survivor waits for that.
    survivor = spawn_worker(database_url, redis_url, "--burst", FOLD_BATCH_SIZE=str(BATCH))
    assert survivor.process.wait(timeout=120) == 0
    assert fates(runtime) == {"processed": BATCH + 500}
    assert fold_counts(runtime) == {1}


@pytest.mark.slow
def test_two_live_workers_never_fold_one_room_at_once(
    worker_runtime: Runtime,
    database_url: str,
    redis_url: str,
    redis_client: Redis,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the room's Redis lock is the same whatever the database: SQLite alone shows it")
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    store_joins(runtime, room_id, BATCH + 50)
    lock_key = locks.lock_key(room_id)
    with room_lock(runtime.redis, room_id):  # this process is the first worker, busy with the room
        queueing.signal_room(runtime.redis, runtime.queue(), room_id)
        spawn_worker(database_url, redis_url, FOLD_BATCH_SIZE=str(BATCH))
        drain = Job.fetch(queueing.DRAIN_JOB_ID, connection=runtime.redis)
        wait_for(lambda: drain.get_status() == "started", "the second worker to take the room's drain")
        # Past the lease a lock nobody renewed would have lapsed in: ours is renewed, so it stays ours.
        held_until = time.monotonic() + 1.5 * LEASE_SECONDS
        while time.monotonic() < held_until:
            assert 0 < redis_client.pttl(lock_key) <= LEASE_SECONDS * 1000
            assert fates(runtime) == {"queued": BATCH + 50}
            time.sleep(0.1)
    wait_for(lambda: fates(runtime) == {"processed": BATCH + 50}, "the second worker to fold the room")
    assert fold_counts(runtime) == {1}


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class database_held:
    """Block writers to the room's deliveries after the first `skip` (all writers on SQLite)."""

    def __init__(self, url: str, room_id: int, skip: int) -> None:
        self.url, self.room_id, self.skip = url, room_id, skip

    def __enter__(self) -> None:
        if self.url.startswith("sqlite"):
            self.sqlite = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            self.sqlite.execute("BEGIN IMMEDIATE")
            return
        self.engine = create_engine(self.url)
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        # Not OFFSET ... FOR UPDATE: PostgreSQL locks the rows an OFFSET skips as well.
        boundary = self.connection.scalar(
            text("SELECT id FROM deliveries WHERE room_id = :room ORDER BY id OFFSET :skip LIMIT 1"),
            {"room": self.room_id, "skip": self.skip},
        )
        self.connection.execute(
            text("SELECT id FROM deliveries WHERE room_id = :room AND id >= :boundary FOR UPDATE"),
            {"room": self.room_id, "boundary": boundary},
        )

    def __exit__(self, *exc: object) -> None:
        if self.url.startswith("sqlite"):
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
            return
        self.transaction.rollback()
        self.connection.close()
        self.engine.dispose()


class poisoned:
    """Make the database refuse to mark one delivery processed: a delivery no fold can get past."""

    def __init__(self, runtime: Runtime, dedupe_key: str) -> None:
        self.runtime, self.key = runtime, dedupe_key

    def __enter__(self) -> None:
        sqlite = self.runtime.engine.dialect.name == "sqlite"
        statements = (
            [
                "CREATE TRIGGER poison BEFORE UPDATE ON deliveries "
                f"WHEN NEW.status = 'processed' AND NEW.dedupe_key = '{self.key}' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned delivery'); END"
            ]
            if sqlite
            else [
                "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'poisoned delivery'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER poison BEFORE UPDATE ON deliveries FOR EACH ROW "
                f"WHEN (NEW.status = 'processed' AND NEW.dedupe_key = '{self.key}') "
                "EXECUTE FUNCTION poison()",
            ]
        )
        with self.runtime.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    def __exit__(self, *exc: object) -> None:
        sqlite = self.runtime.engine.dialect.name == "sqlite"
        with self.runtime.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER poison" if sqlite else "DROP TRIGGER poison ON deliveries"))
            if not sqlite:
                connection.execute(text("DROP FUNCTION poison()"))


@contextlib.contextmanager
def column_renamed(runtime: Runtime, table: str, column: str) -> Iterator[None]:
    """Rename a column the fold writes, as a deploy of code newer than its database leaves it; restore it."""
    with runtime.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME COLUMN {column} TO {column}_gone"))
    try:
        yield
    finally:
        runtime.engine.dispose()  # no pooled connection may keep a plan of the renamed table
        with runtime.engine.begin() as connection:
            connection.execute(text(f"ALTER TABLE {table} RENAME COLUMN {column}_gone TO {column}"))
