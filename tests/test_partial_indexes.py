"""The deliveries' partial indexes serve the queries they were made for (on SQLite, where it takes care).

SQLite uses a partial index only when the query's WHERE holds the index's own condition, so a condition
sent as bound parameters silently turns the index into write cost with no reader. Each query is captured as
it runs on a real SQLite database and its plan is asked of SQLite itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session

from workers import inbox
from workers.meetings import has_unnamed, load_timeline
from workers.models import Base
from workers.runtime.connections import make_sessionmaker


@contextmanager
def sqlite_engine(tmp_path: Any) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def plans_of(engine: Engine, run: Callable[[Session], object]) -> list[str]:
    """Run `run` in a session and return SQLite's plan of every SELECT it sent."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with make_sessionmaker(engine)() as db:
            run(db)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as connection:
        return [
            " / ".join(row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters))
            for sql, parameters in sent
        ]


def test_a_drain_finds_unprocessed_deliveries_through_their_index(tmp_path: Any) -> None:
    with sqlite_engine(tmp_path) as engine:
        (plan,) = plans_of(engine, lambda db: inbox.unprocessed(db, 1, 10))
    assert "ix_deliveries_unprocessed" in plan


def test_a_room_timeline_reads_its_starts_and_ends_through_their_index(tmp_path: Any) -> None:
    with sqlite_engine(tmp_path) as engine:
        plans = plans_of(engine, lambda db: load_timeline(db, 1))
    assert "ix_deliveries_room_marks" in plans[0]


def test_unnamed_deliveries_are_found_through_their_index(tmp_path: Any) -> None:
    with sqlite_engine(tmp_path) as engine:
        plans = plans_of(engine, lambda db: has_unnamed(db, 1))
    assert any("ix_deliveries_room_unnamed" in plan for plan in plans)
