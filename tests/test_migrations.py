"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, func, inspect, select, text

from tests.conftest import postgres_database
from workers.models import Base
from workers.runtime.connections import make_engine
from workers.runtime.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    with postgres_database(server_url, "rollcall_migrations", schema=False) as (url, _):
        yield url


def test_upgrade_builds_the_models_schema(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert differences == []
    assert set(Base.metadata.tables) <= tables


def test_upgrade_twice_is_a_no_op(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert version


def test_upgrade_keeps_the_rows_of_a_database_at_0002(empty_database: str) -> None:
    """The dev database upgrades itself at start: a migration must carry existing rows across (on SQLite,
    batch mode rebuilds each table while other tables' foreign keys point at it)."""
    upgrade(empty_database, "0002")
    engine = make_engine(empty_database)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name != "alembic_version":
                connection.execute(table.insert().values(_row_of(table)))
    engine.dispose()
    upgrade(empty_database)
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name != "alembic_version"
        }
    engine.dispose()
    assert counts and set(counts.values()) == {1}, counts


def _row_of(table: Table) -> dict[str, Any]:
    """A row with a value in every column that needs one: ids and foreign keys 1, the rest by type."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.nullable and not column.primary_key and not column.foreign_keys:
            continue
        python_type = column.type.python_type
        if column.primary_key or column.foreign_keys or python_type is int:
            row[column.name] = 1
        elif python_type is datetime:
            row[column.name] = datetime(2026, 11, 1, tzinfo=UTC)
        elif python_type is bool:
            row[column.name] = False
        elif python_type in (dict, list):
            row[column.name] = {}
        elif python_type is float:
            row[column.name] = 1.0
        else:
            row[column.name] = f"{table.name}-{column.name}"[: getattr(column.type, "length", None) or 64]
    return row


def test_0009_stamps_existing_sessions_with_their_room_s_status_rules(empty_database: str) -> None:
    upgrade(empty_database, "0008")
    engine = make_engine(empty_database)
    rooms = {
        1: {"lateAfterSeconds": 300, "earlyLeaveSeconds": 600, "includeHostsInAttendance": True},
        2: {"lateAfterSeconds": True, "includeHostsInAttendance": "yes"},  # never stored; read safely
        3: {},
    }
    metadata = MetaData()
    metadata.reflect(engine)
    room_table, session_table = metadata.tables["rooms"], metadata.tables["meeting_sessions"]
    with engine.begin() as connection:
        for room_id, options in rooms.items():
            room = {"id": room_id, "room_name": f"r-{room_id}", "webhook_token_hash": f"h-{room_id}"}
            connection.execute(
                room_table.insert().values({**_row_of(room_table), **room, "options": options})
            )
            session = {"id": room_id, "room_id": room_id, "meeting_session_id": f"ms-{room_id}"}
            connection.execute(session_table.insert().values({**_row_of(session_table), **session}))
    engine.dispose()
    upgrade(empty_database)
    engine = make_engine(empty_database)
    query = text(
        "SELECT room_id, late_after_seconds, early_leave_seconds, include_hosts_in_attendance"
        " FROM meeting_sessions ORDER BY room_id"
    )
    with engine.connect() as connection:
        stamped = [tuple(row) for row in connection.execute(query)]
    engine.dispose()
    assert stamped == [(1, 300, 600, True), (2, None, None, False), (3, None, None, False)]
