"""Runtime: what a process needs to do its work (settings, database and Redis, made once per process),
and the Runtime RQ jobs use: installed by the worker, or built from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from workers.runtime.connections import connect_redis, make_engine, make_sessionmaker
from workers.runtime.settings import Settings, load_settings

QUEUE_NAME = "rollcall"
# Sending mail and webhooks waits on other servers: its own queue keeps folding current while they are slow.
NOTIFY_QUEUE_NAME = "rollcall-notify"


@dataclass
class Runtime:
    """The process's connections; Redis is connected on first use so the web app starts without it."""

    settings: Settings
    engine: Engine
    Db: sessionmaker[Session]
    _redis: Redis | None = field(default=None, repr=False)

    @classmethod
    def start(cls, settings: Settings, instance_path: str | Path = "instance") -> Runtime:
        """Create the engine and session factory for this process."""
        engine = make_engine(settings.resolved_database_url(instance_path))
        return cls(settings=settings, engine=engine, Db=make_sessionmaker(engine))

    @property
    def redis(self) -> Redis:
        """Return the Redis client, connecting (or starting the embedded server) on first use."""
        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_url)
        return self._redis

    def queue(self) -> Queue:
        """Return Rollcall's RQ queue."""
        return Queue(QUEUE_NAME, connection=self.redis)

    def notify_queue(self) -> Queue:
        """Return the RQ queue of notification sends (worked by the worker's notify process)."""
        return Queue(NOTIFY_QUEUE_NAME, connection=self.redis)


_runtime: Runtime | None = None
_pid: int | None = None


def install(runtime: Runtime) -> None:
    """Make `runtime` the one jobs in this process use (the worker entry point and tests call this)."""
    global _runtime, _pid
    _runtime, _pid = runtime, os.getpid()


def current() -> Runtime:
    """Return this process's Runtime, building it from the environment on first use or after a fork."""
    if _runtime is None or _pid != os.getpid():
        # A forked child must not reuse its parent's pooled connections: build its own engine.
        install(Runtime.start(load_settings()))
    assert _runtime is not None
    return _runtime
