"""Worker throughput: deliveries folded per second, end to end, by one `python -m workers` process.

Two measurements: a stored backlog drained by one worker, and the receiver under load with the worker
running beside it (the web process and the worker sharing the machine, as in production).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import Connection, func, insert, select

from bench import load, services
from workers import locks, queueing
from workers.models import Delivery
from workers.models.inbox import IS_UNPROCESSED
from workers.runtime.connections import make_engine
from workers.runtime.process import QUEUE_NAME

DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", 20_000))
ROOMS = 4
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Drained:
    label: str
    deliveries: int
    seconds: (
        float  # folding: from the worker first holding a room's lock to the last commit, or the load window
    )
    wall_seconds: float  # including the worker's start-up, or the load window

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds


def backlog(database_url: str, redis_url: str) -> Drained:
    """Store DELIVERIES deliveries in ROOMS rooms, then time one worker folding them all."""
    rooms = [services.make_room(database_url, f"drain-{n}", f"drain-metered-{n}")[0] for n in range(ROOMS)]
    _store(database_url, rooms)
    return drain_stored(database_url, redis_url, rooms, DELIVERIES)


def drain_stored(
    database_url: str, redis_url: str, rooms: list[int], total: int, timeout: float = 120
) -> Drained:
    """Signal `rooms` as the receiver would, then time one burst worker folding all `total` stored rows.

    Raise TimedOut, with the worker stopped, if they are not all folded within `timeout` seconds.
    """
    redis = Redis.from_url(redis_url)
    for room_id in rooms:
        queueing.signal_room(redis, Queue(QUEUE_NAME, connection=redis), room_id)
    started = time.perf_counter()
    worker = _worker(database_url, redis_url, "--burst")
    first_lock = _first_lock(redis, rooms, timeout)
    try:
        _, done = _watch(database_url, total, lambda: worker.poll() is not None, timeout=timeout)
    except BaseException:
        worker.terminate()  # overran its time, or the run was interrupted: do not leave it folding
        raise
    finally:
        _reap(worker)
    return Drained("backlog, one worker", total, done - first_lock(), done - started)


def _first_lock(redis: Redis, rooms: list[int], timeout: float) -> Callable[[], float]:
    # When the worker first holds a room's lock: folding starts then. Not the worker's start (its imports
    # are not folding), nor the first commit (a backlog folded in one batch commits all at once). A daemon
    # thread, bounded by the drain's timeout: a worker that never takes a lock must not keep the bench up.
    keys = [locks.lock_key(room_id) for room_id in rooms]
    seen: list[float] = []

    def watch() -> None:
        deadline = time.perf_counter() + timeout
        while not redis.exists(*keys) and time.perf_counter() < deadline:
            time.sleep(0.002)
        seen.append(time.perf_counter())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def first() -> float:
        watcher.join()
        return seen[0]

    return first


def _reap(worker: subprocess.Popen[bytes], grace: float = 30) -> None:
    # A burst worker leaves on its own once the queue is empty; one that lingers is told to.
    try:
        worker.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        worker.terminate()
        worker.wait()


def _store(database_url: str, rooms: list[int]) -> None:
    per_room = DELIVERIES // len(rooms)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for room_id in rooms:
            connection.execute(insert(Delivery), [_row(room_id, n) for n in range(per_room)])
    engine.dispose()


def _row(room_id: int, n: int) -> dict[str, object]:
    person, leaving = divmod(n, 2)
    event = "participant-left" if leaving else "participant-joined"
    moment = T0 + timedelta(seconds=person % 600 + (900 if leaving else 0))
    body = {
        "participantSessionId": f"{room_id}-{person}",
        "meetingSessionId": f"bench-{room_id}",
        "externalUserId": f"user-{person}",
        "name": f"Person {person}",
        ("leftTime" if leaving else "joinTime"): moment.isoformat().replace("+00:00", "Z"),
    }
    return {
        "room_id": room_id,
        "event": event,
        "dedupe_key": f"{event}:{room_id}-{person}",
        "meeting_session_ref": f"bench-{room_id}",
        "participant_session_id": f"{room_id}-{person}",
        "event_time": moment,
        "raw_body": json.dumps(body),
        "content_type": "application/json",
        "headers": {},
        "received_at": T0,
        "status": "queued",
    }


def live(database_url: str, redis_url: str, seconds: float) -> Drained:
    """Load the receiver for `seconds` with one worker running; time until every delivery is folded."""
    room_id, token = services.make_room(database_url, "live-room", "live-metered-id")
    worker = _worker(database_url, redis_url)
    try:
        with services.gunicorn("wsgi:app", services.service_env(database_url, redis_url)) as port:
            started = time.perf_counter()
            target = load.Target(
                port, f"/hooks/metered/{token}/participant-joined", "live-room", "live-metered-id"
            )
            load.run(target, seconds, warmup=0, label=f"live-{room_id}")
        received = _count(database_url, None)
        _, done = _watch(database_url, received, lambda: False, since=started)
    finally:
        worker.terminate()
        worker.wait()
    return Drained("receiver under load + one worker", received, done - started, done - started)


def _worker(database_url: str, redis_url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, our own arguments
        [sys.executable, "-m", "workers", *args],
        cwd=services.PROJECT,
        env=services.service_env(database_url, redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _count(database_url: str, status: str | None) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        count = _count_on(connection, status)
    engine.dispose()
    return count


def _count_on(connection: Connection, status: str | None) -> int:
    query = select(func.count()).select_from(Delivery)
    if status == UNFOLDED:
        query = query.where(IS_UNPROCESSED)
    elif status is not None:
        query = query.where(Delivery.status == status)
    return int(connection.scalar(query) or 0)


UNFOLDED = "unfolded"  # either status still to fold, counted through their partial index


def _watch(
    database_url: str,
    total: int,
    gave_up: Callable[[], bool],
    since: float | None = None,
    timeout: float = 120,
) -> tuple[float, float]:
    # One connection for the whole watch, and a count the partial index answers: the watcher shares the
    # machine with the worker it times.
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            first, done = _poll(connection, total, gave_up, since, timeout)
            if (processed := _count_on(connection, "processed")) < total:
                raise RuntimeError(f"{total - processed} of {total} deliveries were not folded")
    finally:
        engine.dispose()
    return first, done


def _poll(
    connection: Connection, total: int, gave_up: Callable[[], bool], since: float | None, timeout: float
) -> tuple[float, float]:
    first = since
    deadline = time.perf_counter() + timeout
    while (now := time.perf_counter()) < deadline:
        unfolded = _count_on(connection, UNFOLDED)
        connection.commit()  # a fresh snapshot next time
        if unfolded < total and first is None:
            first = now
        if unfolded == 0:
            return first or now, now
        if gave_up() and _count_on(connection, UNFOLDED):
            raise RuntimeError(f"the worker stopped with {unfolded} of {total} deliveries still to fold")
        time.sleep(0.05)
    raise TimedOut(f"{total - unfolded} of {total} deliveries folded in {timeout:.0f} s")


class TimedOut(RuntimeError):
    """The deliveries were not all folded in the time allowed."""


def report(results: list[Drained]) -> None:
    """Print deliveries per second for each measurement."""
    for result in results:
        print(
            f"  {result.label:34} {result.deliveries:7d} deliveries  {result.rate:8.0f} deliveries/s  "
            f"({result.seconds:.1f} s folding, {result.wall_seconds:.1f} s wall)"
        )
