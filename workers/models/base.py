"""The declarative base, its naming convention and the UTC timestamp type."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


_AWARE_EPOCH, _NAIVE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """Convert and format in one step on SQLite: the generic path costs twice as much per value."""
        # SQLAlchemy would chain process_bind_param with SQLite DateTime's %-formatting; one isoformat
        # of the same naive value gives the same text (tests pin it to SQLAlchemy's own).
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _AWARE_EPOCH + (value - _NAIVE_EPOCH)  # type: ignore[no-any-return]


def _naive_utc(value: datetime) -> datetime:
    # By arithmetic from an epoch rather than astimezone()/replace(): the same instant, and several times
    # faster, which counts when a rebuild converts a few hundred thousand of them.
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return _NAIVE_EPOCH + (value - _AWARE_EPOCH)


def _sqlite_text(value: datetime | None) -> str | None:
    # The text SQLite's DateTime stores ("YYYY-MM-DD HH:MM:SS.ffffff"), which its reader parses back.
    return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")


class Base(DeclarativeBase):
    """The base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def utcnow() -> datetime:
    """Return the current time, UTC, to the millisecond (the precision the API reports)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
