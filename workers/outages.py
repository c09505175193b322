"""Waiting out a Redis or database outage: back off, say so once, carry on when the service is back.

A worker must outlive its services' restarts: a platform restarting a worker that exits on an outage backs
off itself, and leaves rooms unfolded for minutes. What is not transient (a bad URL, a schema behind the
migrations, credentials a service refuses) is a configuration error and still stops the process, with one
line naming the variable.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from redis.exceptions import AuthenticationError, RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from workers.settings import ConfigError

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
