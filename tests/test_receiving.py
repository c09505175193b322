"""The receiver's group commit: real threads, a real gunicorn killed under load, both databases, Redis."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.test_inbox import arrival, make_room
from tests.test_web_process import add_room, start_web  # noqa: F401  (start_web: a fixture)
from workers import inbox
from workers.models import Delivery
from workers.queueing import is_pending
from workers.receiving import Received, Receiver
from workers.runtime.connections import make_engine
from workers.runtime.process import QUEUE_NAME, Runtime


def receiver_of(runtime: Runtime) -> Receiver:
    return Receiver(runtime.engine, runtime.redis, runtime.queue())


def duplicate_counts(runtime: Runtime) -> dict[int, int]:
    """Return each stored delivery's id with its duplicate count."""
    with runtime.Db() as db:
        return {row_id: count for row_id, count in db.execute(select(Delivery.id, Delivery.duplicate_count))}


@contextmanager
def writes_held(runtime: Runtime) -> Iterator[None]:
    """Hold off every insert into the inbox until the block ends, so that arrivals gather into one group."""
    with runtime.engine.connect() as connection:
        if runtime.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock: other writers wait (busy_timeout)
        else:
            connection.begin()
            connection.execute(text("LOCK TABLE deliveries IN SHARE MODE"))
        yield
        connection.rollback()


@contextmanager
def poisoned_insert(runtime: Runtime, participant: str) -> Iterator[None]:
    """Make the database refuse to insert one participant session's delivery, as a constraint would."""
    sqlite = runtime.engine.dialect.name == "sqlite"
    when = f"NEW.participant_session_id = '{participant}'"
    statements = (
        [
            f"CREATE TRIGGER poison BEFORE INSERT ON deliveries WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'no'); END"
        ]
        if sqlite
        else [
            "CREATE FUNCTION poison() RETURNS trigger AS "
            "$$ BEGIN RAISE EXCEPTION 'no'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER poison BEFORE INSERT ON deliveries FOR EACH ROW WHEN ({when}) "
            "EXECUTE FUNCTION poison()",
        ]
    )
    with runtime.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with runtime.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER poison" if sqlite else "DROP TRIGGER poison ON deliveries"))
            if not sqlite:
                connection.execute(text("DROP FUNCTION poison()"))


def submit_gathered(
    receiver: Receiver, arrivals: list[inbox.Arrival], runtime: Runtime
) -> list[Future[Received]]:
    """Store `arrivals` from a thread each while inserts are held, so all but the first form one group."""
    pool = ThreadPoolExecutor(len(arrivals) + 1)
    with writes_held(runtime):
        first = pool.submit(receiver.store, arrivals[0])  # leads, and waits on the held inserts
        time.sleep(0.3)
        rest = [pool.submit(receiver.store, item) for item in arrivals[1:]]  # gather behind it
        time.sleep(0.5)
    pool.shutdown(wait=True)
    return [first, *rest]


def test_twenty_threads_storing_one_delivery_store_one_row_and_one_of_them_is_new(
    runtime: Runtime, redis_client: Redis
) -> None:
    room_id, _ = make_room(runtime)
    receiver = receiver_of(runtime)
    barrier = threading.Barrier(20)

    def store() -> Received:
        barrier.wait()
        return receiver.store(arrival(room_id, '{"_id": "p1", "meetingSessionId": "ms-1"}'))

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: store(), range(20)))
    assert sorted(answer.stored.new for answer in answers) == [False] * 19 + [True]
    assert len({answer.stored.id for answer in answers}) == 1
    assert duplicate_counts(runtime) == {answers[0].stored.id: 19}
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1
    assert is_pending(redis_client, room_id)


def test_a_group_stores_new_rows_and_repeats_with_one_answer_each(
    runtime: Runtime, redis_client: Redis
) -> None:
    room_id, _ = make_room(runtime)
    other_room, _ = make_room(runtime, "other", "r-2")
    receiver = receiver_of(runtime)
    stored_before = receiver.store(arrival(room_id, '{"_id": "old"}')).stored
    redis_client.flushdb()  # as if a drain had taken the room: the group must signal it again
    bodies = [
        (room_id, "a"),
        (room_id, "b"),
        (room_id, "a"),
        (room_id, "old"),
        (other_room, "a"),
        (room_id, "a"),
    ]
    futures = submit_gathered(receiver, [arrival(room, f'{{"_id": "{ps}"}}') for room, ps in bodies], runtime)
    a, b, a_again, old, a_elsewhere, a_third = [future.result().stored for future in futures]
    assert [a.new, b.new, a_again.new, old.new, a_elsewhere.new, a_third.new] == [1, 1, 0, 0, 1, 0]
    assert a.id == a_again.id == a_third.id and old.id == stored_before.id
    assert duplicate_counts(runtime) == {a.id: 2, b.id: 0, old.id: 1, a_elsewhere.id: 0}
    assert is_pending(redis_client, room_id) and is_pending(redis_client, other_room)
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1


def test_a_row_the_database_refuses_fails_its_own_request_and_no_other(
    runtime: Runtime, redis_client: Redis
) -> None:
    room_id, _ = make_room(runtime)
    receiver = receiver_of(runtime)
    bodies = ["good-1", "bad", "good-2", "good-1"]
    with poisoned_insert(runtime, "bad"):
        futures = submit_gathered(
            receiver, [arrival(room_id, f'{{"_id": "{ps}"}}') for ps in bodies], runtime
        )
    good, bad, other, repeat = futures
    with pytest.raises(DBAPIError):
        bad.result()
    assert (good.result().stored.new, other.result().stored.new, repeat.result().stored.new) == (
        True,
        True,
        False,
    )
    assert good.result().stored.id == repeat.result().stored.id
    assert duplicate_counts(runtime) == {good.result().stored.id: 1, other.result().stored.id: 0}
    assert is_pending(redis_client, room_id)


def test_with_redis_away_the_group_is_stored_and_left_for_the_relay(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    away = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    receiver = Receiver(runtime.engine, away, Queue(QUEUE_NAME, connection=away))
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda n: receiver.store(arrival(room_id, f'{{"_id": "p{n}"}}')), range(5)))
    assert all(answer.stored.new and not answer.signalled for answer in answers)
    with runtime.Db() as db:
        statuses = db.scalars(select(Delivery.status)).all()
        assert db.scalar(select(func.count()).select_from(Delivery)) == 5
    assert set(statuses) == {"received"}


def test_every_delivery_answered_before_the_web_process_is_killed_is_stored(
    start_web: Callable[..., tuple[str, Path, subprocess.Popen[bytes]]],  # noqa: F811
    database_url: str,
) -> None:
    token = add_room(database_url)
    base_url, log, server = start_web()
    answered: list[tuple[int, int, str]] = []  # status, delivery id, participant session
    stop = threading.Event()

    def post_until_refused(thread: int) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            for number in itertools.count():
                # Every fifth post repeats the previous one: answered 200, and it must be stored too.
                participant = f"ps-{thread}-{number - 1 if number % 5 == 4 else number}"
                try:
                    response = client.post(
                        f"/hooks/metered/{token}/participant-joined",
                        json={"participantSessionId": participant, "meetingSessionId": "ms-1"},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code in (200, 202):
                    answered.append((response.status_code, response.json()["id"], participant))
                if stop.is_set():
                    return

    threads = [threading.Thread(target=post_until_refused, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in [server.pid, *_children(server.pid)]:
        os.kill(pid, signal.SIGKILL)  # no worker finishes what it was doing
    stop.set()
    for thread in threads:
        thread.join()
    assert {status for status, _, _ in answered} == {200, 202}, log.read_text()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(Delivery.id, Delivery.participant_session_id))
        stored = {row_id: participant for row_id, participant in rows}
    engine.dispose()
    assert [
        (row_id, participant) for _, row_id, participant in answered if stored.get(row_id) != participant
    ] == []


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
