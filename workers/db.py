"""Engines and sessions, made per process (never carried across a fork)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

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
