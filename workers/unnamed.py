"""Deliveries that name no meeting session: read their room's timeline, and move them when it is re-cut.

A delivery without a meetingSessionId goes to the meeting of the stretch of its room's timeline it falls
in (workers.room_timeline). A start or end folded later may cut that stretch in two or name it, so the
fold then finds the unnamed deliveries the new mark's neighbourhood holds and moves those now in the
wrong session. Together the two give an answer that depends only on the set of deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from workers.models import (
    AttendanceRow,
    Delivery,
    DeliveryStatus,
    MeetingSession,
    Notification,
    ParticipantSession,
    SessionChange,
)
from workers.room_timeline import END, START, Mark, Position, Timeline, position


def place(event: str, event_time: datetime, join_time: datetime | None) -> Position:
    """Return where an unnamed delivery sits: a leave that reports its join time goes where its join went."""
    return position(event, join_time or event_time)


def load_timeline(db: Session, room_id: int) -> Timeline:
    """Return the room's timeline: every start and end stored (folded or not) and every sweeper's close."""
    reported = db.execute(
        select(Delivery.event, Delivery.event_time, Delivery.meeting_session_ref).where(
            Delivery.room_id == room_id,
            Delivery.event.in_((START, END)),
            Delivery.status != DeliveryStatus.FAILED,
        )
    )
    swept = db.execute(
        select(MeetingSession.ended_at, MeetingSession.meeting_session_id).where(
            MeetingSession.room_id == room_id,
            MeetingSession.closed_by_sweeper.is_(True),
            MeetingSession.ended_at.is_not(None),
        )
    )
    marks = [Mark(event, at, ref) for event, at, ref in reported if at is not None]
    marks += [Mark(END, ended_at, meeting_session_id) for ended_at, meeting_session_id in swept if ended_at]
    return Timeline(room_id, marks)


def has_unnamed(db: Session, room_id: int) -> bool:
    """Say whether the room has any delivery that names no meeting session (most rooms have none)."""
    unnamed = select(Delivery.id).where(Delivery.room_id == room_id, Delivery.meeting_session_ref.is_(None))
    return bool(db.scalar(select(exists(unnamed))))


@dataclass(frozen=True)
class Move:
    """An unnamed delivery folded into one session that the re-cut timeline puts in another."""

    delivery_id: int
    from_session_id: int
    to_meeting_session_id: str


def misplaced(db: Session, timeline: Timeline, new_marks: Iterable[Mark]) -> list[Move]:
    """Return the moves that the new marks' re-cutting of the timeline calls for."""
    moves: dict[int, Move] = {}
    for mark in new_marks:
        span = timeline.around(mark)
        query = (
            select(
                Delivery.id,
                Delivery.event,
                Delivery.event_time,
                Delivery.join_time,
                MeetingSession.id,
                MeetingSession.meeting_session_id,
            )
            .join(MeetingSession, MeetingSession.id == Delivery.session_id)
            .where(
                Delivery.room_id == timeline.room_id,
                Delivery.meeting_session_ref.is_(None),
                Delivery.status == DeliveryStatus.PROCESSED,
            )
        )
        if span.after is not None:
            # A leave's own time is never before its join's, so this bound misses none placed by join time.
            query = query.where(Delivery.event_time >= span.after[0])
        for delivery_id, event, event_time, join_time, session_id, now_in in db.execute(query):
            if event_time is None:
                continue  # the receiver always keeps a time; a row without one stays where it is
            at = place(event, event_time, join_time)
            if span.holds(at) and (target := timeline.meeting_at(at)) != now_in:
                moves[delivery_id] = Move(delivery_id, session_id, target)
    return list(moves.values())


def drop_if_empty(db: Session, meeting: MeetingSession) -> bool:
    """Delete a session that no delivery belongs to any more, unless someone was already told about it."""
    holds_any = db.scalar(select(func.count(Delivery.id)).where(Delivery.session_id == meeting.id))
    told = db.scalar(select(exists(select(Notification.id).where(Notification.session_id == meeting.id))))
    if holds_any or told:
        return False
    for model in (AttendanceRow, ParticipantSession, SessionChange):
        db.execute(delete(model).where(model.session_id == meeting.id))
    db.delete(meeting)
    return True
