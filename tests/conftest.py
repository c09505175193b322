"""Real services for the tests: Redis (REDIS_URL or embedded), SQLite and PostgreSQL, HTTP on loopback.

Set TEST_DATABASE_URL (CI does) to run every database test on PostgreSQL as well as SQLite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import Column, Engine, MetaData, String, Table, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from tests.emulator_fixture import (  # noqa: F401  (fixtures)
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,
    served_emulator_fixture,
)
from tests.servers import free_port, serving
from webhooks import create_app, runtime_of
from workers.models import Base
from workers.runtime import connections, process
from workers.runtime.connections import make_engine, make_sessionmaker
from workers.runtime.migrate import alembic_config
from workers.runtime.process import NOTIFY_QUEUE_NAME, QUEUE_NAME, Runtime
from workers.runtime.settings import Settings

PROJECT = Path(__file__).resolve().parent.parent
API_TOKEN = "test-api-token"
# A database of this run's own (flushed before every test), so two runs on one server rarely meet.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", 1 + os.getpid() % 15))

DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def create_schema(engine: Engine) -> None:
    """Create the models' tables and stamp them as the latest migration (a test checks the two agree)."""
    Base.metadata.create_all(engine)
    version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))
    version.create(engine)
    with engine.begin() as connection:
        connection.execute(version.insert(), [{"version_num": head} for head in HEADS])


HEADS = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the URL of a real Redis: REDIS_URL's server, else an embedded redis-server."""
    url = os.environ.get("REDIS_URL")
    if url:
        client = Redis.from_url(url)
        kwargs = client.connection_pool.connection_kwargs
        return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{TEST_REDIS_DB}"
    return connections.embedded_url(connections.embedded_redis()).replace("db=0", f"db={TEST_REDIS_DB}")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Redis]:
    """Return a client for the test Redis database, emptied first."""
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """Create a database of this run's own on TEST_DATABASE_URL's server, with the schema; drop it after."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield None
        return
    with postgres_database(server_url, "rollcall_test") as (url, _):
        yield url


@contextmanager
def postgres_database(server_url: str, prefix: str, schema: bool = True) -> Iterator[tuple[str, Engine]]:
    """Create a database of its own on the server (with the schema unless told not to); drop it after.

    Yield its URL and an AUTOCOMMIT engine on the server, for statements about the database itself.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if schema:
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
    try:
        yield url, admin
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Any, postgres_url: str | None) -> str:
    """Return an empty database with the current schema: a fresh SQLite file, or PostgreSQL truncated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rollcall.sqlite'}"
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
        return url
    assert postgres_url
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_url


@pytest.fixture
def make_settings(database_url: str, redis_url: str, redis_client: Redis) -> Callable[..., Settings]:
    """Return a factory of Settings for the test services; keyword arguments override fields."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url,
            "api_token": (API_TOKEN,),
            # Nothing listens there: tests that call Metered start the emulator.
            "metered_api_url": "http://127.0.0.1:9/api/v1",
            "metered_secret_key": "test-metered-secret",
            "finalize_after_seconds": 120,
            "drain_gather_seconds": 0.25,  # tests wait for drains; a shorter gathering makes them wait less
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Return the default test Settings."""
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Build a fresh app on the test database and Redis."""
    flask_app = create_app(settings)
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).engine.dispose()


@pytest.fixture
def Db(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Return a session factory on the test database, for tests that arrange or inspect rows directly."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


PUBLIC_BASE_URL = "https://rollcall.example"


@pytest.fixture
def metered_app(make_settings: Callable[..., Settings], emulator: RunningEmulator) -> Iterator[Flask]:
    """Build an app whose Metered is the emulator, with a public base URL for its webhook URLs."""
    flask_app = create_app(
        make_settings(
            metered_api_url=emulator.url, metered_secret_key=EMULATOR_SECRET, public_base_url=PUBLIC_BASE_URL
        )
    )
    yield flask_app
    runtime_of(flask_app).engine.dispose()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    """Return the app's Runtime (database sessions, Redis, queue)."""
    return runtime_of(app)


@pytest.fixture
def live_app(
    make_settings: Callable[..., Settings],
) -> Callable[..., AbstractContextManager[tuple[Flask, str]]]:
    """Return a factory serving a fresh app over real HTTP: `with live_app(**overrides) as (app, url)`."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[tuple[Flask, str]]:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        overrides.setdefault("public_base_url", base_url)
        flask_app = create_app(make_settings(**overrides))
        with serving(flask_app, port):
            yield flask_app, base_url
        runtime_of(flask_app).engine.dispose()

    return start


@pytest.fixture
def api(live_app: Callable[..., Any]) -> Iterator[httpx.Client]:
    """Return an HTTP client, authorised with the API token, for a running app (`api.app` is the app)."""
    with (
        live_app() as (flask_app, base_url),
        httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
        ) as client,
    ):
        client.app = flask_app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def start_runtime(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Runtime]]:
    """Return a factory of installed Runtimes with overridden settings, disposed of after the test."""
    started: list[Runtime] = []

    def start(**overrides: Any) -> Runtime:
        runtime = Runtime.start(make_settings(**overrides))
        process.install(runtime)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.engine.dispose()


def run_worker(runtime: Runtime) -> None:
    """Run every queued job (and what they enqueue) in a real RQ worker, then return."""
    process.install(runtime)  # jobs use this process's Runtime, not one built from the environment
    worker = SimpleWorker([QUEUE_NAME, NOTIFY_QUEUE_NAME], connection=runtime.redis)
    worker.work(burst=True, with_scheduler=False)


class WorkerProcess:
    """A `python -m workers` subprocess whose log (stdout and stderr) goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            # Its own process group: a kill takes whatever it started too (its notify process).
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers", *args],
                cwd=PROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def lines(self, containing: str = "") -> list[str]:
        """Return the lines logged so far that contain `containing`."""
        return [line for line in self.log_path.read_text().splitlines() if containing in line]

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill the process group at once (a crash, as far as the worker can tell), and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Return a factory of worker processes: `spawn_worker(database_url, redis_url, *args, **env)`.

    Each logs to a file of its own; whatever is still running is killed at the end of the test.
    """
    started: list[WorkerProcess] = []

    def spawn(database_url: str, redis_url: str, *args: str, **environment: str) -> WorkerProcess:
        env = {
            **os.environ,
            "API_TOKEN": "t",
            **environment,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
        }
        worker = WorkerProcess(list(args), env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a redis-server of the test's own on a free port; the factory (re)starts it on that port.

    Arguments to the factory go to redis-server (`own_redis("--requirepass", "pw")`).
    """
    port, started = free_port(), []

    def start(*options: str) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not on PATH")
        server = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", *options],
            stdout=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        started.append(server)
        for _ in range(100):
            if accepting(port):
                return server
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    start.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    start.port = port  # type: ignore[attr-defined]
    start.servers = started  # type: ignore[attr-defined]
    yield start
    for server in started:
        server.kill()
        server.wait()


def accepting(port: int) -> bool:
    """Return whether a server accepts connections on 127.0.0.1:`port` (password or not)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
