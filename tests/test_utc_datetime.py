"""The UTC timestamp type: what it stores, and that it reads back the same instant, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

from workers.models import Room
from workers.models.base import UTCDateTime
from workers.rooms import new_token, token_hash

MOMENTS = [
    datetime(2026, 5, 4, 15, 1, 2, 345678, tzinfo=UTC),
    datetime(999, 1, 1, tzinfo=UTC),  # a three-digit year is zero-padded
    datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),  # stored as 2025-12-31 23:00 UTC
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_sqlite_stores_the_text_sqlalchemys_datetime_would(moment: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
    assert ours(moment) == theirs(naive_utc)


def test_a_naive_datetime_is_refused() -> None:
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    with pytest.raises(ValueError, match="naive"):
        bind(datetime(2026, 5, 4))
    assert bind(None) is None


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_stored_moment_reads_back_as_the_same_aware_instant(
    Db: sessionmaker[Session], moment: datetime
) -> None:
    with Db.begin() as db:
        room = Room(room_name="r", webhook_token_hash=token_hash(new_token()), created_at=moment)
        db.add(room)
        db.flush()
        room_id = room.id
    with Db() as db:
        stored = db.scalar(select(Room.created_at).where(Room.id == room_id))
    assert stored == moment
    assert stored is not None and stored.utcoffset() == timedelta(0)
    # Compared in the database too: the stored text orders as the instants do.
    with Db() as db:
        found = db.scalar(select(Room.id).where(Room.created_at < moment + timedelta(microseconds=1)))
    assert found == room_id
