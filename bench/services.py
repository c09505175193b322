"""The services a benchmark run needs, each started fresh and stopped after: Redis, databases, gunicorn."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import insert, make_url, text

from workers.models import Room
from workers.rooms import new_token, token_hash
from workers.runtime.connections import make_engine
from workers.runtime.migrate import upgrade

PROJECT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    """Return a TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float = 20) -> None:
    """Wait until something accepts connections on `port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a throwaway redis-server (REDIS_URL's server if none is installed) and yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        from workers.runtime.connections import embedded_redis, embedded_url

        yield embedded_url(embedded_redis())
        return
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - the installed redis-server, our own arguments
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


@contextmanager
def sqlite_database() -> Iterator[str]:
    """Yield the URL of a fresh SQLite file with the schema."""
    with tempfile.TemporaryDirectory(prefix="rollcall-bench-") as folder:
        url = f"sqlite:///{folder}/rollcall.sqlite"
        _create_schema(url)
        yield url


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """Yield the URL of a throwaway PostgreSQL database with the schema, or None if none is reachable."""
    admin = make_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"rollcall_bench_{os.getpid()}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        print(f"  (PostgreSQL skipped: {type(error).__name__} at {make_url(PG_SERVER).host})")
        yield None
        return
    url = make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        _create_schema(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _create_schema(url: str) -> None:
    upgrade(url)  # the migrations, as a deployment runs them (the worker refuses a schema behind them)


def make_room(
    url: str, name: str = "bench-room", metered_room_id: str = "bench-metered-id"
) -> tuple[int, str]:
    """Insert a room and return its id and webhook token."""
    token = new_token()
    engine = make_engine(url)
    with engine.begin() as connection:
        room_id = connection.execute(
            insert(Room).returning(Room.id),
            {
                "room_name": name,
                "metered_room_id": metered_room_id,
                "webhook_token_hash": token_hash(token),
                "options": {},
                "metered_room": {},
                "notify_participants": False,
            },
        ).scalar_one()
    engine.dispose()
    return int(room_id), token


def service_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Return the environment Rollcall's processes run with in the benchmark."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_TOKEN": "bench",
        "PYTHONPATH": str(PROJECT),
    }


@contextmanager
def gunicorn(app: str, env: dict[str, str] | None = None, config: str | None = None) -> Iterator[int]:
    """Serve `app` as the Procfile's web process does (two workers, gunicorn.conf.py); yield the port.

    `config` names another gunicorn configuration in place of gunicorn.conf.py (e.g. a baseline's).
    """
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    command += ["--config", config] if config else []
    server = subprocess.Popen(  # noqa: S603 - this interpreter, our own arguments
        [*command, app],
        cwd=PROJECT,
        env=env or {**os.environ, "PYTHONPATH": str(PROJECT)},
        stdout=subprocess.DEVNULL,  # the access log, as in production, written and dropped
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        time.sleep(1.0)  # both workers booted
        yield port
    finally:
        server.terminate()
        server.wait()
