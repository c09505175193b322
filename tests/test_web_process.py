"""The web process as the Procfile starts it: real gunicorn, real sockets, its logs read from its output."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gunicorn.ctl.client import ControlClient

from tests.conftest import API_TOKEN
from tests.servers import free_port
from tests.test_log_redaction import hook_spellings, leaked, send_raw
from workers.models import Room
from workers.rooms import new_token, token_hash
from workers.runtime.connections import make_engine, make_sessionmaker
from workers.runtime.migrate import is_current

PROJECT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60  # two workers booting on a loaded 2-core machine
SLOW_CLIENTS = 50
CONCURRENT_READS = 40  # SQLAlchemy's default pool: 5 connections, 10 more on demand


def procfile_command(process: str) -> str:
    """Return the command of one process type of the Procfile, as a shell would run it."""
    for line in (PROJECT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process} process in the Procfile")


@pytest.fixture
def start_web(
    database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[str, Path, subprocess.Popen[bytes]]]]:
    """Return a starter of the Procfile's web process on a free port: (base URL, its log file, process)."""
    with ExitStack() as stack:

        def start(**env: str) -> tuple[str, Path, subprocess.Popen[bytes]]:
            port = free_port()
            log = tmp_path / f"web-{port}.log"
            process = stack.enter_context(_running(port, log, database_url, redis_url, tmp_path, env))
            return f"http://127.0.0.1:{port}", log, process

        yield start


@contextmanager
def _running(
    port: int, log: Path, database_url: str, redis_url: str, home: Path, extra: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_TOKEN": API_TOKEN,
        "XDG_RUNTIME_DIR": str(home),  # where gunicorn puts its control socket by default
        **extra,
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command("web")],
            cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/healthz", process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"web process not up after {STARTUP_SECONDS} s:\n{log.read_text()}")


def add_room(database_url: str) -> str:
    """Insert a room and return its webhook token."""
    token = new_token()
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as db:
        db.add(Room(room_name=f"r-{token[:8].lower()}", webhook_token_hash=token_hash(token)))
    engine.dispose()
    return token


def test_the_procfile_web_process_answers_with_fifty_slow_clients_holding_sockets(
    start_web: Callable[..., Any], database_url: str
) -> None:
    token = add_room(database_url)
    base_url, log, _ = start_web()
    port = int(base_url.rpartition(":")[2])
    half_requests = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: sl",  # stops inside its headers
        f"POST /hooks/metered/{token}/participant-joined HTTP/1.1\r\nHost: x\r\n".encode()
        + b'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"participantSes',  # inside its body
    ]
    with ExitStack() as stack:
        for number in range(SLOW_CLIENTS):
            slow = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            slow.sendall(half_requests[number % 2])
        time.sleep(1.0)  # let the server take them all in before asking it anything
        healthz = httpx.get(base_url + "/healthz", timeout=5)
        delivery = httpx.post(
            f"{base_url}/hooks/metered/{token}/participant-joined",
            json={"participantSessionId": "ps-1", "meetingSessionId": "ms-1"},
            timeout=5,
        )
        # More requests at once than a worker's connection pool holds: greenlets wait on it, not block.
        with ThreadPoolExecutor(CONCURRENT_READS) as pool:
            reads = list(pool.map(lambda _: _events(base_url), range(CONCURRENT_READS)))
    assert healthz.status_code == 200, log.read_text()
    assert delivery.status_code == 202
    seen = {tuple(item["id"] for item in read.json()["items"]) for read in reads}
    assert seen == {(delivery.json()["id"],)}


def _events(base_url: str) -> httpx.Response:
    return httpx.get(base_url + "/api/events", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)


def test_two_instances_on_one_host_keep_their_own_control_socket(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    first_url, _, first = start_web()
    second_url, _, _ = start_web()
    for url in (first_url, second_url):
        port = url.rpartition(":")[2]
        control = tmp_path / f"gunicorn-{port}.ctl"
        _wait_for(control.exists)
        with ControlClient(str(control), timeout=10) as client:
            listeners = client.send_command("show listeners")
        assert f":{port}" in str(listeners) and ":" + _other(url, first_url, second_url) not in str(listeners)
    assert not (tmp_path / "gunicorn.ctl").exists()
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    second_port = second_url.rpartition(":")[2]
    with ControlClient(str(tmp_path / f"gunicorn-{second_port}.ctl"), timeout=10) as client:
        assert f":{second_port}" in str(client.send_command("show listeners"))


def _other(url: str, first: str, second: str) -> str:
    return (second if url == first else first).rpartition(":")[2]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_gunicorns_access_log_never_shows_a_room_token(
    start_web: Callable[..., Any], database_url: str
) -> None:
    token = add_room(database_url)
    base_url, log, process = start_web()
    for target in hook_spellings(token):
        send_raw(base_url, "POST", target, b'{"participantSessionId": "ps-1"}')
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    text = log.read_text()
    access = [line for line in text.splitlines() if "HTTP/1.1" in line and "/healthz" not in line]
    assert len(access) == len(hook_spellings(token)), text
    assert all("[redacted]" in line for line in access)
    assert not leaked(token, text)


def test_the_web_process_warns_of_a_schema_behind_the_migrations(
    start_web: Callable[..., Any], tmp_path: Path
) -> None:
    _, log, _ = start_web(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    _wait_for(lambda: "schema is behind" in log.read_text())
    assert "run `flask --app wsgi db upgrade`" in log.read_text()


def test_db_upgrade_itself_does_not_warn_that_the_schema_is_behind(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "redis://127.0.0.1:9/0"}
    command = shlex.split(procfile_command("release"))
    flask = Path(sys.executable).parent / command[0]
    done = subprocess.run(
        [str(flask), *command[1:]], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "behind" not in done.stdout + done.stderr
    assert is_current(database_url)
