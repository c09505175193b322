"""The UTC timestamp type's binding: the text it stores on SQLite, and naive datetimes refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from workers.models.base import UTCDateTime

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
