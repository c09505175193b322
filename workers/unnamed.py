"""Deliveries that name no meeting session: their room's timeline, and those a new start or end re-places.

A delivery without a meetingSessionId goes to the meeting of the stretch of its room's timeline it falls
in (workers.room_timeline). A start or end folded later may cut that stretch in two or name it, so the
fold then finds the unnamed deliveries the new mark's neighbourhood holds and moves those now in the
wrong session (workers.regroup). Together the two give an answer that depends only on the set of
deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from workers.deliveries.parsing import END, JOIN, LEAVE
from workers.models import Delivery, DeliveryStatus, MeetingSession
from workers.models.inbox import IS_MARK
from workers.room_timeline import Mark, Position, Timeline, position


def place(event: str, event_time: datetime, join_time: datetime | None) -> Position:
    """Return where an unnamed delivery sits: a leave that reports its join time goes where its join went."""
    if event == LEAVE and join_time is not None:
        # Never later than the leave itself, should the two clocks disagree: the search below relies on it.
        return position(JOIN, min(join_time, event_time))
    return position(event, event_time)


def load_timeline(db: Session, room_id: int) -> Timeline:
    """Return the room's timeline: every start and end stored (folded or not) and every sweeper's cut."""
    reported = db.execute(
        select(Delivery.event, Delivery.event_time, Delivery.meeting_session_ref).where(
            Delivery.room_id == room_id,
            IS_MARK,
            Delivery.status != DeliveryStatus.FAILED,
        )
    ).all()
    swept = db.execute(
        select(MeetingSession.sweep_cut_at, MeetingSession.meeting_session_id).where(
            MeetingSession.room_id == room_id, MeetingSession.sweep_cut_at.is_not(None)
        )
    ).all()
    foreign = _foreign_names(db, room_id, {ref for _, _, ref in reported if ref})
    # A start or end naming another room's session will fail to fold: it must not cut this room's timeline.
    # (The receiver always keeps a time; a row without one cannot be placed and cuts nothing.)
    marks = [Mark(event, at, ref) for event, at, ref in reported if at and ref not in foreign]
    marks += [Mark(END, cut, name) for cut, name in swept if cut]
    return Timeline(room_id, marks)


def _foreign_names(db: Session, room_id: int, names: set[str]) -> set[str]:
    if not names:
        return set()
    query = select(MeetingSession.meeting_session_id).where(
        MeetingSession.meeting_session_id.in_(sorted(names)), MeetingSession.room_id != room_id
    )
    return set(db.scalars(query))


def has_unnamed(db: Session, room_id: int) -> bool:
    """Say whether the room has any delivery that names no meeting session (most rooms have none)."""
    unnamed = select(Delivery.id).where(Delivery.room_id == room_id, Delivery.meeting_session_ref.is_(None))
    return bool(db.scalar(select(exists(unnamed))))


def last_fact_at(db: Session, session_id: int) -> datetime | None:
    """Return the time of the latest delivery folded into a session."""
    return db.scalar(select(func.max(Delivery.event_time)).where(Delivery.session_id == session_id))


@dataclass(frozen=True)
class Move:
    """An unnamed delivery folded into one session that the re-cut timeline puts in another."""

    delivery_id: int
    from_session_id: int
    to_meeting_session_id: str
    done: bool = False  # the fold itself already put it there (a replayed delivery)


def misplaced(db: Session, timeline: Timeline, new_marks: Iterable[Mark]) -> list[Move]:
    """Return the moves that the new marks' re-cutting of the timeline calls for."""
    spans = [timeline.around(mark) for mark in new_marks]
    if not spans:
        return []
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
    lowest = [span.after[0] for span in spans if span.after is not None]
    if len(lowest) == len(spans):
        # Nothing is placed later than its own time (see place), so this bound misses none.
        query = query.where(Delivery.event_time >= min(lowest))
    moves = []
    for delivery_id, event, event_time, join_time, session_id, now_in in db.execute(query):
        if event_time is None:
            continue  # the receiver always keeps a time; a row without one stays where it was folded
        at = place(event, event_time, join_time)
        if any(span.holds(at) for span in spans) and (target := timeline.meeting_at(at)) != now_in:
            moves.append(Move(delivery_id, session_id, target))
    return moves
