"""Rosters (who a room expects), per-session status overrides, and the management audit trail."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from workers.deliveries.parsing import EMAIL_LENGTH, ID_LENGTH, NAME_LENGTH, PARTICIPANT_KEY_LENGTH
from workers.models.base import Base, utcnow

GROUP_LENGTH = 200
REASON_LENGTH = 1000
ACTOR_LENGTH = 200


class RosterRole(enum.StrEnum):
    """What a roster member is expected to do in the room's meetings."""

    HOST = "host"
    ATTENDEE = "attendee"


class RosterMember(Base):
    """One version of one expected person: a change closes the row in force and opens another.

    A session is judged against the rows in force when it began (valid_from <= began < valid_to), so a
    roster edited mid-series leaves earlier sessions as they were.
    """

    __tablename__ = "roster_members"
    __table_args__ = (
        Index("ix_roster_members_room_id_participant_key", "room_id", "participant_key"),
        # At most one row in force per person: the room's row lock serialises writers on PostgreSQL, and
        # this makes the rule the database's own, on SQLite too.
        Index(
            "uq_roster_members_open",
            "room_id",
            "participant_key",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    # The contract's person key: ext:<externalUserId>, else email:<lower-cased email>.
    participant_key: Mapped[str] = mapped_column(String(PARTICIPANT_KEY_LENGTH))
    external_user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(16), default=RosterRole.ATTENDEE)
    group: Mapped[str | None] = mapped_column(String(GROUP_LENGTH))
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[datetime | None]


class StatusOverride(Base):
    """An organizer's word on one person's status in one session, laid over the computed figures."""

    __tablename__ = "status_overrides"
    __table_args__ = (UniqueConstraint("session_id", "participant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("meeting_sessions.id"))
    participant_key: Mapped[str] = mapped_column(String(PARTICIPANT_KEY_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))
    set_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRecord(Base):
    """One change made by a person or a program (not by Metered): who, when, what, before and after."""

    __tablename__ = "audit_records"

    # 64-bit, as deliveries' ids: the audit is kept for ever, and its ids are the export's cursor.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The credential's name ("api", a named token) or "cli:<os user>".
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    action: Mapped[str] = mapped_column(String(64))  # e.g. roster.added, roster.removed, status.overridden
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_sessions.id"))
    subject: Mapped[str | None] = mapped_column(String(PARTICIPANT_KEY_LENGTH))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    # When an erasure rewrote a person in subject, before or after (see workers.sealing).
    redacted_at: Mapped[datetime | None]
    redaction: Mapped[str | None] = mapped_column(String(16))
