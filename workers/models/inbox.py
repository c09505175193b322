"""The inbox: every webhook delivery Metered made, stored once, with what became of it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workers.models.base import Base, utcnow


class DeliveryStatus(enum.StrEnum):
    """What became of a delivery."""

    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSED = "processed"
    FAILED = "failed"
    DUPLICATE = "duplicate"


class Delivery(Base):
    """One webhook delivery: its raw body and the fields read from it."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_room_id_status", "room_id", "status"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    event: Mapped[str] = mapped_column(String(32))
    # The contract's natural key: event + participant/meeting session id, else a hash of the body.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    meeting_session_ref: Mapped[str | None] = mapped_column(String(200))
    participant_session_id: Mapped[str | None] = mapped_column(String(200))
    event_time: Mapped[datetime | None]
    time_reported: Mapped[bool] = mapped_column(default=True)
    raw_body: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_address: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.RECEIVED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    duplicate_count: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
    session_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_sessions.id"), index=True)
