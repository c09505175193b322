"""Rooms created through Rollcall, with their hashed webhook token and Rollcall-only settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from workers.models.base import Base, utcnow


class Room(Base):
    """A Metered room whose webhooks point at Rollcall."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    room_name: Mapped[str] = mapped_column(String(200), unique=True)
    metered_room_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Only a SHA-256 of the webhook token is kept: a database dump must not yield a usable URL.
    webhook_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token a rotation replaced, as its SHA-256 too: Metered's retries in flight still reach the old URL,
    # so it stays valid until previous_token_expires_at (TOKEN_OVERLAP_SECONDS after the rotation).
    previous_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_token_expires_at: Mapped[datetime | None]
    # The Create Room options Rollcall sent (and PATCHed since), without the name and the webhook URLs:
    # the cross-field rules are checked against them when a PATCH arrives.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Metered's room object as last seen, minus the webhook URLs (they carry the token).
    metered_room: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    organizer_email: Mapped[str | None] = mapped_column(String(320))
    notify_participants: Mapped[bool] = mapped_column(default=False)
    min_attendance_percent: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    token_rotated_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
