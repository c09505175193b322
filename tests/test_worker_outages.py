"""The worker process (`python -m workers`) against services that come and go, and what it logs."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import WorkerProcess
from tests.servers import free_port
from tests.test_inbox import arrival, make_room
from tests.test_jobs import BATCH, database_held, fates, fold_counts, join_body, store_joins, wait_for
from workers import inbox, locks, queueing
from workers.runtime import connections
from workers.runtime.process import Runtime
from workers.runtime.settings import Settings

WAITING = "unreachable"
BACK = "reachable again"
# The worker's main process says it through workers.runtime.connections; its notify process has a logger
# of its own.
MAIN = "workers.runtime.connections: "


def runtime_on(settings: Settings) -> Runtime:
    return Runtime.start(settings)


def let_two_more_tries_fail() -> None:
    """Wait past the worker's next two tries at an absent service (1 s, then 2 s later), plus a margin."""
    time.sleep(connections.FIRST_DELAY_SECONDS * (1 + 2) + 1)


def signal_joins(runtime: Runtime, room_id: int, count: int, first: int) -> None:
    store_joins(runtime, room_id, count, first=first)
    queueing.signal_room(runtime.redis, runtime.queue(), room_id)


@pytest.mark.slow
def test_the_worker_waits_for_redis_and_outlives_its_restart(
    make_settings: Callable[..., Settings],
    database_url: str,
    own_redis: Any,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    worker = spawn_worker(database_url, own_redis.url)
    wait_for(lambda: worker.lines(WAITING), "the worker to say it waits for Redis")
    let_two_more_tries_fail()
    assert worker.alive()
    assert len(worker.lines(MAIN + "Redis " + WAITING)) == 1
    server = own_redis()
    runtime = runtime_on(make_settings(redis_url=own_redis.url))
    try:
        room_id, _ = make_room(runtime)
        signal_joins(runtime, room_id, 20, first=0)
        wait_for(lambda: fates(runtime) == {"processed": 20}, "the deliveries to be folded", seconds=60)
        assert len(worker.lines(MAIN + "Redis " + BACK)) == 1
        time.sleep(2)  # the worker is idle now, blocked waiting for a job
        server.kill()
        server.wait()
        wait_for(
            lambda: len(worker.lines(MAIN + "Redis " + WAITING)) == 2, "the worker to notice", seconds=60
        )
        time.sleep(3)
        assert worker.alive()
        own_redis()  # back, and empty
        signal_joins(runtime, room_id, 20, first=20)
        wait_for(lambda: fates(runtime) == {"processed": 40}, "the new deliveries to be folded", seconds=90)
        assert worker.alive()
        assert fold_counts(runtime) == {1}  # nothing folded twice across the outages
        assert len(worker.lines(MAIN + "Redis " + WAITING)) == 2
        assert len(worker.lines(MAIN + "Redis " + BACK)) == 2
        assert not worker.lines("Traceback")
    finally:
        runtime.engine.dispose()


@pytest.mark.slow
def test_redis_lost_in_the_middle_of_a_drain_loses_nothing_and_folds_nothing_twice(
    make_settings: Callable[..., Settings],
    database_url: str,
    own_redis: Any,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    own_redis()
    runtime = runtime_on(make_settings(redis_url=own_redis.url))
    try:
        room_id, _ = make_room(runtime)
        store_joins(runtime, room_id, BATCH + 500)
        with database_held(database_url, room_id, skip=BATCH):
            worker = spawn_worker(database_url, own_redis.url, FOLD_BATCH_SIZE=str(BATCH))
            queueing.signal_room(runtime.redis, runtime.queue(), room_id)
            lock_key = locks.lock_key(room_id)
            # Holding the room's lock, the drain is inside its job, and cannot finish while the rows are held.
            wait_for(lambda: runtime.redis.exists(lock_key), "the drain to start")
            server = own_redis.servers[-1]
            server.kill()
            server.wait()
            own_redis()  # back, and empty: the drain's lock and job are gone
        wait_for(
            lambda: fates(runtime) == {"processed": BATCH + 500},
            "the relay to fold what the drain left",
            seconds=120,
        )
        assert worker.alive()
        assert fold_counts(runtime) == {1}
    finally:
        runtime.engine.dispose()


class TcpRelay:
    """A TCP relay from a local port to a server: a database that is unreachable until it is started."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.connections: list[socket.socket] = []

    def serve(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
                self.connections += [client, server]
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop accepting, and cut every connection relayed so far: the database is gone."""
        # A close alone leaves the port listening until the blocked accept() returns: shutdown wakes it.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


@pytest.mark.slow
def test_the_worker_waits_for_the_database(
    runtime: Runtime,
    database_url: str,
    redis_url: str,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file is never unreachable")
    port = free_port()
    real = make_url(database_url)
    relayed = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    worker = spawn_worker(relayed, redis_url)
    wait_for(lambda: worker.lines(WAITING), "the worker to say it waits for the database")
    let_two_more_tries_fail()
    assert worker.alive()
    assert len(worker.lines(MAIN + "Database " + WAITING)) == 1
    relay = TcpRelay(port, (real.host or "127.0.0.1", real.port or 5432))
    try:
        relay.serve()
        room_id, _ = make_room(runtime)
        signal_joins(runtime, room_id, 20, first=0)
        wait_for(lambda: fates(runtime) == {"processed": 20}, "the deliveries to be folded", seconds=90)
        assert len(worker.lines(MAIN + "Database " + BACK)) == 1
        assert worker.alive()
    finally:
        relay.close()


@pytest.mark.slow
def test_a_database_lost_while_working_is_reported_once_gone_and_once_back(
    runtime: Runtime,
    database_url: str,
    redis_url: str,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file is never unreachable")
    port, real = free_port(), make_url(database_url)
    target = (real.host or "127.0.0.1", real.port or 5432)
    relay = TcpRelay(port, target)
    relay.serve()
    worker = spawn_worker(real.set(port=port).render_as_string(hide_password=False), redis_url)
    room_id, _ = make_room(runtime)
    signal_joins(runtime, room_id, 20, first=0)
    wait_for(lambda: fates(runtime) == {"processed": 20}, "the first deliveries to be folded", seconds=60)
    relay.close()
    signal_joins(runtime, room_id, 20, first=20)  # its drain fails: the database is gone
    wait_for(lambda: worker.lines(MAIN + "Database " + WAITING), "the worker to say so", seconds=60)
    relay = TcpRelay(port, target)
    try:
        relay.serve()
        # The drain's retry, or the relay, folds them once the database is back.
        wait_for(lambda: fates(runtime) == {"processed": 40}, "the rest to be folded", seconds=180)
        wait_for(lambda: worker.lines(MAIN + "Database " + BACK), "the worker to say it is back")
    finally:
        relay.close()
    assert len(worker.lines(MAIN + "Database " + WAITING)) == 1
    assert len(worker.lines("Database " + BACK)) == 1
    assert not worker.lines("Traceback") and not worker.lines("OperationalError:")
    assert fold_counts(runtime) == {1}


@pytest.mark.parametrize("password", [None, "hunter2"])
def test_redis_refusing_the_password_stops_the_worker_with_one_line(
    password: str | None,
    database_url: str,
    own_redis: Any,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    own_redis("--requirepass", "the-right-one")
    url = own_redis.url if password is None else own_redis.url.replace("//", f"//:{password}@")
    worker = spawn_worker(database_url, url)
    assert worker.process.wait(timeout=60) != 0
    [line] = worker.lines()
    assert line.startswith("REDIS_URL: ") and "hunter2" not in line


@pytest.mark.parametrize("what", ["database", "username"])
def test_a_database_refusing_the_url_stops_the_worker_with_one_line(
    what: str, postgres_url: str | None, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    if postgres_url is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    # The test server trusts local connections: no password is checked, so ask for what does not exist.
    url = make_url(postgres_url).set(password="hunter2")
    url = url.set(database="rollcall_no_such_one") if what == "database" else url.set(username="nobody_here")
    worker = spawn_worker(url.render_as_string(hide_password=False), redis_url)
    assert worker.process.wait(timeout=60) != 0
    [line] = worker.lines()
    assert line.startswith("DATABASE_URL: ") and "hunter2" not in line


def test_a_database_url_of_an_unknown_scheme_stops_the_worker_with_one_line(
    redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    worker = spawn_worker("nosuchdb://user:hunter2@127.0.0.1/rollcall", redis_url)
    assert worker.process.wait(timeout=60) != 0
    [line] = worker.lines()
    assert line.startswith("DATABASE_URL: ")
    assert "hunter2" not in line


def test_a_schema_behind_the_migrations_stops_the_worker_with_one_line(
    tmp_path: Path, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    worker = spawn_worker(empty, redis_url)
    assert worker.process.wait(timeout=60) != 0
    [line] = worker.lines()
    assert line.startswith("DATABASE_URL: the schema is not at the latest migration")


@pytest.mark.slow
def test_the_worker_logs_one_line_per_drain_batch(
    runtime: Runtime, database_url: str, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    rooms = 12
    for index in range(rooms):
        room_id, _ = make_room(runtime, name=f"room-{index}", metered_room_id=None)
        for person in range(3):
            inbox.store(runtime.engine, arrival(room_id, join_body(person, meeting=f"ms-{index}")))
        queueing.signal_room(runtime.redis, runtime.queue(), room_id)
    worker = spawn_worker(database_url, redis_url, "--burst")
    assert worker.process.wait(timeout=120) == 0
    assert fates(runtime) == {"processed": 3 * rooms}
    batches = worker.lines(": folded 3, failed 0 in ")
    assert len(batches) == rooms
    # Besides the batches, only the start-up relay's line: none of RQ's lines per job.
    assert len(worker.lines()) - len(batches) <= 2, worker.lines()


def test_the_worker_stops_when_told_to(
    database_url: str, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    worker = spawn_worker(database_url, redis_url)
    wait_for(lambda: worker.lines("worker ready"), "the worker to start")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0
