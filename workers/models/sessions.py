"""Meeting sessions, their participant sessions (segments) and per-person attendance."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from workers.deliveries.parsing import EMAIL_LENGTH, ID_LENGTH, NAME_LENGTH, PARTICIPANT_KEY_LENGTH
from workers.models.base import Base, utcnow


class SessionStatus(enum.StrEnum):
    """A meeting session's lifecycle."""

    LIVE = "live"
    ENDED = "ended"
    FINAL = "final"


class MeetingSession(Base):
    """One call in a room: the facts reported about it and the figures derived from them."""

    __tablename__ = "meeting_sessions"
    __table_args__ = (Index("ix_meeting_sessions_room_id_started_at", "room_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    meeting_session_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    status: Mapped[str] = mapped_column(String(8), default=SessionStatus.LIVE)
    # Facts, as reported (or stood in for by the received time).
    reported_start: Mapped[datetime | None]
    reported_end: Mapped[datetime | None]
    end_received_at: Mapped[datetime | None]
    earliest_fact_at: Mapped[datetime | None]
    last_delivery_at: Mapped[datetime | None]
    closed_by_sweeper: Mapped[bool] = mapped_column(default=False)
    # Where the sweeper's close cut the room's timeline: the session's last fact when it was closed. Kept,
    # not derived, so a late delivery folding into the session cannot move the cut.
    sweep_cut_at: Mapped[datetime | None]
    # Rules stamped when the session starts, so a later room change does not rewrite history.
    min_attendance_percent: Mapped[float | None]
    reconnect_grace_seconds: Mapped[int] = mapped_column(BigInteger, default=30)
    late_after_seconds: Mapped[int | None] = mapped_column(BigInteger)
    early_leave_seconds: Mapped[int | None] = mapped_column(BigInteger)
    include_hosts_in_attendance: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Derived figures.
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # 64-bit: 2**31 milliseconds is under 25 days, and a session may span a century (deliveries.parsing).
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    participant_count: Mapped[int] = mapped_column(default=0)
    peak_concurrency: Mapped[int] = mapped_column(default=0)
    inferred: Mapped[bool] = mapped_column(default=False)
    finalized_at: Mapped[datetime | None]
    # Set once the post-meeting notifications are in the ledger; a final session without it had its
    # planning job lost, and the worker's periodic finalize_overdue queues it again.
    notifications_planned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def finalize_due(self, grace_seconds: int) -> datetime | None:
        """Return when the session becomes final (end received + grace); None if it is not ended, or final."""
        if self.end_received_at is None or self.status == SessionStatus.FINAL:
            return None
        return self.end_received_at + timedelta(seconds=grace_seconds)

    @classmethod
    def finalize_due_by(cls, now: datetime, grace_seconds: int) -> ColumnElement[bool]:
        """Return finalize_due's rule as SQL: the ended sessions whose grace is over at `now`."""
        return (cls.status == SessionStatus.ENDED) & (
            cls.end_received_at <= now - timedelta(seconds=grace_seconds)
        )

    @hybrid_property
    def began_at(self) -> datetime:
        """When the session began: its start, else (no fact folded yet) when Rollcall first saw it."""
        return self.started_at or self.created_at

    @began_at.inplace.expression
    @classmethod
    def _began_at_expression(cls) -> ColumnElement[datetime]:
        return func.coalesce(cls.started_at, cls.created_at)


class ParticipantSession(Base):
    """One join-to-leave of one device, merged from its join and leave deliveries."""

    __tablename__ = "participant_sessions"
    __table_args__ = (
        UniqueConstraint("session_id", "participant_session_id"),
        Index("ix_participant_sessions_session_id_participant_key", "session_id", "participant_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("meeting_sessions.id"))
    participant_session_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    joined_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    external_user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    participant_key: Mapped[str] = mapped_column(String(PARTICIPANT_KEY_LENGTH))
    # Metered's isAdmin on this device's join or leave; None when neither said.
    is_admin: Mapped[bool | None]


class AttendanceRow(Base):
    """One person's attendance in one meeting session."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("session_id", "participant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("meeting_sessions.id"))
    participant_key: Mapped[str] = mapped_column(String(PARTICIPANT_KEY_LENGTH), index=True)
    identified_by: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH))
    external_user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    first_join_at: Mapped[datetime]
    last_left_at: Mapped[datetime | None]
    attended_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    attendance_percent: Mapped[float | None]
    join_count: Mapped[int] = mapped_column(default=0)
    present: Mapped[bool | None]
    inferred: Mapped[bool] = mapped_column(default=False)
    # Metered marked one of the person's devices isAdmin: listed as host (a roster host is one too).
    is_host: Mapped[bool] = mapped_column(default=False, server_default=false())
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
