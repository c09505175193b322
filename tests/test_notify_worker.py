"""Sending stays off folding's back: a mail server that accepts and then hangs, against the real worker.

The SMTP servers here are raw sockets on loopback: one that accepts a connection and never answers, and
one that dribbles an endless greeting, each line well inside the per-step timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import WorkerProcess, run_worker
from tests.test_inbox import arrival, make_room
from tests.test_jobs import fates, join_body, wait_for
from tests.test_notify_jobs import (
    attendance,
    final_session,
    ledger,
    run_due_retries,
)
from workers import inbox, notify_jobs, queueing
from workers.runtime import metrics
from workers.runtime.process import Runtime

THANKED = 6  # attendees with an address, on top of final_session's two


class StalledSmtp:
    """A TCP server that accepts every connection and then never answers (or dribbles `220-` lines)."""

    def __init__(self, dribble: bool = False) -> None:
        self.dribble, self.stopped = dribble, threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted, self.open = 0, 0
        self.lock = threading.Lock()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            with self.lock:
                self.accepted += 1
                self.open += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        # Held until the client gives up and closes, or the test ends.
        # A client that gives up while lines are unread resets the connection: it closed, as far as we care.
        with connection, contextlib.suppress(ConnectionResetError, BrokenPipeError):
            connection.settimeout(0.1)
            while not self.stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    if self.dribble:
                        connection.sendall(b"220-still greeting\r\n")
                    if connection.recv(1024) == b"":
                        break
        with self.lock:
            self.open -= 1

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


@contextlib.contextmanager
def stalled_smtp(dribble: bool = False) -> Iterator[StalledSmtp]:
    server = StalledSmtp(dribble)
    threading.Thread(target=server.serve, daemon=True).start()
    try:
        yield server
    finally:
        server.stop()


def mail_settings(server: StalledSmtp, timeout: float) -> dict[str, Any]:
    return {
        "smtp_url": f"smtp://127.0.0.1:{server.port}",
        "mail_from": "rollcall@example.com",
        "notify_timeout_seconds": timeout,
    }


def many_thank_yous(runtime: Runtime) -> int:
    """Store a final session whose room thanks its attendees, THANKED more of them; return its id."""
    session_id = final_session(runtime, organizer=None, thank=True, trust=True)
    with runtime.Db.begin() as db:
        db.add_all(attendance(session_id, f"p{i}", f"P {i}", f"p{i}@example.com", 30) for i in range(THANKED))
    return session_id


def states(runtime: Runtime, session_id: int) -> list[str]:
    return [entry["state"] for entry in ledger(runtime, session_id).values()]


@pytest.mark.slow
def test_a_join_is_folded_while_mail_hangs(
    start_runtime: Callable[..., Runtime],
    database_url: str,
    redis_url: str,
    spawn_worker: Callable[..., WorkerProcess],
) -> None:
    with stalled_smtp() as smtp:
        # A long per-step timeout: the mail is certain to be hanging when the join comes.
        runtime = start_runtime(**mail_settings(smtp, timeout=120))
        session_id = many_thank_yous(runtime)
        notify_jobs.session_finalized(session_id)  # THANKED + 2 sends queued
        spawn_worker(
            database_url,
            redis_url,
            SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
            MAIL_FROM="r@example.com",
            NOTIFY_TIMEOUT_SECONDS="120",
        )
        wait_for(lambda: smtp.open, "the notify process to be stuck on the mail server", seconds=60)
        room_id, _ = make_room(runtime, name="unrelated")
        inbox.store(runtime.engine, arrival(room_id, join_body(0, meeting="ms-elsewhere")))
        queueing.signal_room(runtime.redis, runtime.queue(), room_id)
        wait_for(lambda: fates(runtime) == {"processed": 1}, "the unrelated join to be folded", seconds=60)
        assert smtp.open == smtp.accepted == 1  # the first send still hangs, the others wait their turn
        assert states(runtime, session_id).count("sending") == 1


def test_sends_to_a_hanging_server_time_out_retry_and_end_failed(
    start_runtime: Callable[..., Runtime],
) -> None:
    with stalled_smtp() as smtp:
        runtime = start_runtime(**mail_settings(smtp, timeout=0.2))
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        notify_jobs.session_finalized(session_id)
        run_worker(runtime)
        entries = ledger(runtime, session_id).values()
        assert [e["state"] for e in entries] == ["pending", "pending"]
        assert all(e["reason"].startswith("will retry:") and "timed out" in e["reason"] for e in entries)
        while run_due_retries(runtime):
            pass
    entries = ledger(runtime, session_id).values()
    assert [e["state"] for e in entries] == ["failed", "failed"]
    assert all(e["reason"].startswith("gave up after retries:") for e in entries)
    assert all("timed out" in e["reason"] for e in entries)
    assert smtp.accepted == 2 * (len(notify_jobs.BACKOFF_SECONDS) + 1) and smtp.open == 0


def test_a_server_that_never_finishes_its_greeting_is_stopped_by_the_job_timeout(
    start_runtime: Callable[..., Runtime],
) -> None:
    with stalled_smtp(dribble=True) as smtp:
        runtime = start_runtime(**mail_settings(smtp, timeout=0.2))  # each line comes well within 0.2 s
        session_id = final_session(runtime)
        notify_jobs.session_finalized(session_id)
        run_worker(runtime)
        [entry] = ledger(runtime, session_id).values()
        timeout = notify_jobs.job_timeout(runtime.settings)
        assert entry["state"] == "sending" and entry["reason"] == f"stopped by the job timeout ({timeout} s)"
        assert attempts_counted(runtime) == 1
        assert run_due_retries(runtime) == 1  # RQ's retry settles it without talking to the server again
    [entry] = ledger(runtime, session_id).values()
    assert entry["state"] == "failed" and entry["reason"].startswith(notify_jobs.UNCERTAIN)
    assert f"job timeout ({timeout} s)" in entry["reason"] and smtp.accepted == 1


def test_a_send_stopped_by_the_job_timeout_on_its_last_try_ends_failed(
    start_runtime: Callable[..., Runtime],
) -> None:
    with stalled_smtp() as smtp:
        runtime = start_runtime(**mail_settings(smtp, timeout=0.2))
        session_id = final_session(runtime)
        notify_jobs.session_finalized(session_id)
        run_worker(runtime)  # the first try: no answer within 0.2 s, so a retry
        for _ in notify_jobs.BACKOFF_SECONDS[1:]:
            assert run_due_retries(runtime) == 1
        smtp.dribble = True  # the last try meets a server that answers for ever, a line at a time
        assert run_due_retries(runtime) == 1
        assert not run_due_retries(runtime)  # no retry is left to settle it
    [entry] = ledger(runtime, session_id).values()
    timeout = notify_jobs.job_timeout(runtime.settings)
    assert entry["state"] == "failed" and entry["reason"].startswith(notify_jobs.UNCERTAIN)
    assert f"job timeout ({timeout} s)" in entry["reason"]
    assert attempts_counted(runtime) == len(notify_jobs.BACKOFF_SECONDS) + 1 == smtp.accepted


def attempts_counted(runtime: Runtime) -> int:
    """Return the send attempts the worker's metrics counted."""
    return int(runtime.redis.hget(metrics.NOTIFICATIONS_KEY, "sending") or 0)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads Linux's /proc")
def test_the_notify_process_stops_when_the_worker_is_killed_alone(
    database_url: str, redis_url: str, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    worker = spawn_worker(database_url, redis_url)
    pid = worker.process.pid
    wait_for(lambda: _children(pid), "the worker to fork its notify process", seconds=60)
    (notify,) = _children(pid)
    os.kill(pid, signal.SIGKILL)  # the worker alone, not its process group
    worker.process.wait()
    wait_for(lambda: not _running(notify), "the orphaned notify process to stop", seconds=60)
