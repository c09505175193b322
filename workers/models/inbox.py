"""The inbox: every webhook delivery Metered made, stored once, with what became of it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from workers.deliveries.parsing import (
    DEDUPE_KEY_LENGTH,
    EMAIL_LENGTH,
    END,
    EVENT_LENGTH,
    ID_LENGTH,
    NAME_LENGTH,
    START,
)
from workers.models.base import Base, utcnow


class DeliveryStatus(enum.StrEnum):
    """What became of a delivery."""

    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSED = "processed"
    FAILED = "failed"
    DUPLICATE = "duplicate"


# Statuses a worker has still to fold; a partial index keeps them cheap to find among millions processed.
UNPROCESSED = (DeliveryStatus.RECEIVED.value, DeliveryStatus.QUEUED.value)
_UNPROCESSED_SQL = text(f"status IN ('{UNPROCESSED[0]}', '{UNPROCESSED[1]}')")
# A room's meeting starts and ends cut its timeline into sessions for deliveries that name none.
_MARK_SQL = text(f"event IN ('{START}', '{END}')")
_UNNAMED_SQL = text("meeting_session_ref IS NULL")


class Delivery(Base):
    """One webhook delivery: its raw body and the fields read from it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The natural key is per room: two rooms may well see the same body.
        UniqueConstraint("room_id", "dedupe_key"),
        Index(
            "ix_deliveries_unprocessed",
            "room_id",
            "id",
            sqlite_where=_UNPROCESSED_SQL,
            postgresql_where=_UNPROCESSED_SQL,
        ),
        Index(
            "ix_deliveries_room_marks",
            "room_id",
            "event_time",
            sqlite_where=_MARK_SQL,
            postgresql_where=_MARK_SQL,
        ),
        Index(
            "ix_deliveries_room_unnamed",
            "room_id",
            "event_time",
            sqlite_where=_UNNAMED_SQL,
            postgresql_where=_UNNAMED_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    event: Mapped[str] = mapped_column(String(EVENT_LENGTH))
    # The contract's natural key: event + participant/meeting session id, else a hash of the body.
    dedupe_key: Mapped[str] = mapped_column(String(DEDUPE_KEY_LENGTH))
    meeting_session_ref: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    participant_session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    event_time: Mapped[datetime | None]
    time_reported: Mapped[bool] = mapped_column(default=True)
    join_time: Mapped[datetime | None]
    external_user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    is_admin: Mapped[bool | None]
    facts_version: Mapped[int] = mapped_column(server_default=text("0"))
    raw_body: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)  # in full: a multipart boundary is part of it
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_address: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.RECEIVED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    duplicate_count: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
    # How many folds of this delivery committed: 1 after a normal run, +1 per replay, never 2 from a crash.
    fold_count: Mapped[int] = mapped_column(default=0)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_sessions.id"), index=True)
    # When retention purged the raw body and headers, or erasure rewrote the person in them; and which.
    redacted_at: Mapped[datetime | None]
    redaction: Mapped[str | None] = mapped_column(String(16))


def _in_literally(column: Mapped[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    # Rendered into the SQL, not bound: SQLite uses a partial index only for a WHERE that contains the
    # index's own condition, and "status IN (?, ?)" is not "status IN ('received', 'queued')".
    return column.in_(bindparam(None, list(values), expanding=True, literal_execute=True))


# The partial indexes' conditions, as queries must write them to use those indexes.
IS_UNPROCESSED = _in_literally(Delivery.status, UNPROCESSED)
# The same rows, said so that no partial index matches, for statements that name their rows by id: they then
# find them through the primary key. Given IS_UNPROCESSED, PostgreSQL trusts statistics that lag a burst of
# inserts, scans the partial index and tests each row against the whole id list (20,000 ids: seconds).
SETTLED = tuple(status.value for status in DeliveryStatus if status.value not in UNPROCESSED)
IS_UNPROCESSED_BY_ID = Delivery.status.not_in(SETTLED)
IS_MARK = _in_literally(Delivery.event, (START, END))
