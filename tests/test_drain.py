"""One drain job for every room with pending deliveries, on real RQ workers, Redis and databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import event, select

from tests.test_inbox import arrival, make_room
from tests.test_jobs import POISON, fates, fold_counts, join_body, poisoned, store_with_poison, wait_for
from workers import inbox, jobs, queueing
from workers.locks import room_lock
from workers.models import Delivery
from workers.runtime import process
from workers.runtime.process import Runtime


@pytest.fixture
def worker_runtime(runtime: Runtime) -> Iterator[Runtime]:
    process.install(runtime)  # the jobs run in this process, on the test's database
    yield runtime


def joins(runtime: Runtime, room_id: int, count: int, first: int = 0) -> None:
    """Store `count` joins in the room, each room's in a meeting session of its own."""
    for index in range(first, first + count):
        inbox.store(runtime.engine, arrival(room_id, join_body(index, meeting=f"ms-of-{room_id}")))


class CountingWorker(SimpleWorker):
    """RQ's in-process worker, counting the jobs it ran to the end and those that failed."""

    succeeded = failed = 0

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        self.succeeded += 1
        super().handle_job_success(job, *args, **kwargs)

    def handle_job_failure(self, job: Job, *args: Any, **kwargs: Any) -> None:
        self.failed += 1
        super().handle_job_failure(job, *args, **kwargs)


def burst(runtime: Runtime) -> CountingWorker:
    """Run one real RQ worker until the queue is empty; return it, to count the jobs it ran."""
    worker = CountingWorker([runtime.queue()], connection=runtime.redis)
    worker.work(burst=True, with_scheduler=False)
    return worker


def processed_at(runtime: Runtime, room_id: int) -> list[datetime]:
    query = select(Delivery.processed_at).where(Delivery.room_id == room_id)
    with runtime.Db() as db:
        return sorted(moment for moment in db.scalars(query) if moment is not None)


def test_many_rooms_signalled_are_folded_by_one_job(worker_runtime: Runtime, redis_client: Redis) -> None:
    runtime = worker_runtime
    rooms = [make_room(runtime, name=f"room-{n}", metered_room_id=f"r-{n}")[0] for n in range(12)]
    enqueued = []
    for room_id in rooms:
        joins(runtime, room_id, 3)
        enqueued.append(queueing.signal_room(runtime.redis, runtime.queue(), room_id))
    assert enqueued == [True] + [False] * 11  # the first signal enqueues the drain, the others join it
    assert runtime.queue().count == 1
    worker = burst(runtime)
    assert worker.succeeded == 1
    assert fates(runtime) == {"processed": 36}
    assert fold_counts(runtime) == {1}
    assert not any(queueing.is_pending(redis_client, room_id) for room_id in rooms)
    assert not redis_client.exists(queueing.DRAIN_FLAG)  # the next delivery enqueues a drain again
    assert queueing.signal_room(runtime.redis, runtime.queue(), rooms[0])


@contextmanager
def commits(runtime: Runtime) -> Iterator[list[str]]:
    """Yield a list that gets, for each transaction committed meanwhile, the name of the committing thread."""
    names: list[str] = []

    def committed(*_: object) -> None:
        names.append(threading.current_thread().name)

    event.listen(runtime.engine, "commit", committed)
    try:
        yield names
    finally:
        event.remove(runtime.engine, "commit", committed)


def test_a_turn_folds_its_rooms_in_one_transaction_on_postgresql(
    worker_runtime: Runtime, database_url: str
) -> None:
    runtime = worker_runtime
    rooms = [make_room(runtime, f"room-{n}", f"r-{n}")[0] for n in range(jobs.ROOMS_PER_TRANSACTION)]
    for room_id in rooms:
        joins(runtime, room_id, 3)
    queueing.signal_rooms(runtime.redis, runtime.queue(), rooms)  # every room ready at once
    with commits(runtime) as committed:
        assert burst(runtime).succeeded == 1
    # SQLite: a transaction a room, so the receiver (a writer too) waits for one room's fold, not a turn's.
    assert len(committed) == (len(rooms) if database_url.startswith("sqlite") else 1)
    assert fates(runtime) == {"processed": 3 * len(rooms)}
    assert fold_counts(runtime) == {1}


def test_a_worker_behind_folds_side_by_side_on_postgresql(worker_runtime: Runtime, database_url: str) -> None:
    runtime = worker_runtime
    count = 3 * jobs.ROOMS_PER_TRANSACTION
    rooms = [make_room(runtime, f"room-{n}", f"r-{n}")[0] for n in range(count)]
    for room_id in rooms:
        joins(runtime, room_id, 2)
    queueing.signal_rooms(runtime.redis, runtime.queue(), rooms)
    with commits(runtime) as committed:
        burst(runtime)
    assert fates(runtime) == {"processed": 2 * count}
    assert fold_counts(runtime) == {1}
    if database_url.startswith("sqlite"):
        assert len(committed) == count  # one writer at a time: nothing to overlap
    else:  # three transactions, each in a thread of its own
        assert len(committed) == 3
        assert len(set(committed)) == 3


def test_a_room_that_fails_in_a_shared_turn_fails_alone(worker_runtime: Runtime) -> None:
    runtime = worker_runtime
    (bad, _), (good, _), (other, _) = (make_room(runtime, f"room-{n}", f"r-{n}") for n in range(3))
    joins(runtime, good, 3, first=100)
    store_with_poison(runtime, bad)  # ten joins and, among them, one the database refuses
    joins(runtime, other, 3, first=200)
    queueing.signal_rooms(runtime.redis, runtime.queue(), [good, bad, other])
    with poisoned(runtime, POISON):
        assert burst(runtime).failed == 0
    assert fates(runtime) == {"processed": 16, "failed": 1}
    assert fold_counts(runtime) == {0, 1}  # the poisoned one never folded, every other one once
    assert not any(queueing.is_pending(runtime.redis, room_id) for room_id in (bad, good, other))


def test_a_room_locked_by_another_worker_is_left_to_it_and_not_stranded(
    worker_runtime: Runtime, redis_client: Redis
) -> None:
    runtime = worker_runtime
    (busy, _), (free, _) = make_room(runtime, "busy", "r-1"), make_room(runtime, "free", "r-2")
    joins(runtime, busy, 5)
    joins(runtime, free, 5, first=100)
    held, folded_by_other = threading.Event(), threading.Event()

    def other_worker() -> None:
        # What another worker's drain does: hold the room's lock, fold it, and meanwhile a delivery comes.
        with room_lock(runtime.redis, busy):
            held.set()
            wait_for(lambda: fates(runtime).get("processed") == 5, "the free room to be folded")
            assert queueing.is_pending(runtime.redis, busy)  # taken, found locked, put back: not stranded
            jobs.fold_pending(runtime, busy, batches=1)
            joins(runtime, busy, 1, first=5)
            queueing.signal_room(runtime.redis, runtime.queue(), busy)  # the flag is set: no new job
            folded_by_other.set()

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(10)
    queueing.signal_room(runtime.redis, runtime.queue(), busy)
    queueing.signal_room(runtime.redis, runtime.queue(), free)
    try:
        worker = burst(runtime)  # the drain goes back to the busy room until the other worker lets go
    finally:
        thread.join(30)
    assert folded_by_other.is_set()
    assert worker.succeeded == 1
    assert fates(runtime) == {"processed": 11}
    assert fold_counts(runtime) == {1}  # nothing folded twice
    assert not queueing.is_pending(redis_client, busy)


def test_a_busy_room_takes_turns_with_the_others(
    worker_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = worker_runtime
    batch = 10
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"fold_batch_size": batch}))
    busy, _ = make_room(runtime, "busy", "r-busy")
    joins(runtime, busy, 3 * batch)
    queueing.signal_room(runtime.redis, runtime.queue(), busy)  # signalled first: it goes first
    quiet = [make_room(runtime, f"quiet-{n}", f"r-{n}")[0] for n in range(3)]
    for room_id in quiet:
        joins(runtime, room_id, 2, first=10_000)
        queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    burst(runtime)
    assert fates(runtime) == {"processed": 3 * batch + 6}
    busy_batches = sorted(set(processed_at(runtime, busy)))
    assert len(busy_batches) == 3
    for room_id in quiet:  # after the busy room's first batch, before its second
        assert busy_batches[0] < processed_at(runtime, room_id)[0] < busy_batches[1]


def test_a_drain_hands_over_to_a_fresh_job_when_its_slice_is_spent(
    worker_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = worker_runtime
    monkeypatch.setattr(queueing, "DRAIN_SLICE_SECONDS", 0.0)  # one turn per job
    monkeypatch.setattr(jobs, "ROOMS_PER_TURN", 1)  # and one room per turn
    rooms = [make_room(runtime, f"room-{n}", f"r-{n}")[0] for n in range(3)]
    for room_id in rooms:
        joins(runtime, room_id, 2)
        queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    worker = burst(runtime)
    assert fates(runtime) == {"processed": 6}
    assert worker.succeeded == 4  # a job per room, then one that finds none left


def test_a_drain_room_job_of_the_previous_release_still_drains(worker_runtime: Runtime) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    joins(runtime, room_id, 4)
    # As the previous release signalled: its room's own flag, then a job by name under the room's job id.
    old_flag = f"rollcall:pending:room:{room_id}"
    runtime.redis.set(old_flag, "1", ex=60)
    runtime.queue().enqueue("workers.jobs.drain_room", room_id, job_id=f"rollcall-drain-room-{room_id}")
    assert burst(runtime).failed == 0
    assert fates(runtime) == {"processed": 4}
    assert not runtime.redis.exists(old_flag)  # that release's web process signals this room again


def test_the_relay_enqueues_a_drain_even_under_a_flag_a_killed_drain_left(
    worker_runtime: Runtime, redis_client: Redis
) -> None:
    runtime = worker_runtime
    room_id, _ = make_room(runtime)
    joins(runtime, room_id, 3)
    redis_client.set(queueing.DRAIN_FLAG, "1")  # its drain died: signals alone would not enqueue one
    assert not queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    assert runtime.queue().count == 0
    assert jobs.relay_rooms(runtime, None) == 1
    burst(runtime)
    assert fates(runtime) == {"processed": 3}
    assert runtime.queue().count == 0
