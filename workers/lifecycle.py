"""A meeting session's life after its deliveries: finalizing it, and sweeping stale sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers import results
from workers.folding import refresh
from workers.locks import lock_session_room
from workers.meetings import last_fact_at
from workers.models import MeetingSession, SessionStatus
from workers.results import ResultChange, figures


def finalize(db: Session, meeting_id: int, now: datetime, finalize_after_seconds: int) -> bool:
    """Mark an ended session final once its grace period is over; say whether it was."""
    meeting = db.get(MeetingSession, meeting_id)
    if meeting is None:
        return False
    lock_session_room(db, meeting)
    due = meeting.finalize_due(finalize_after_seconds)
    if meeting.status != SessionStatus.ENDED or due is None or due > now:
        return False
    before = figures(meeting)
    meeting.status = SessionStatus.FINAL
    meeting.finalized_at = now
    results.record(db, meeting, "finalize", ResultChange(before, figures(meeting)))
    return True


def overdue_sessions(db: Session, now: datetime, finalize_after_seconds: int) -> list[int]:
    """Return the ids of ended sessions whose grace period is over but which are not final yet."""
    query = select(MeetingSession.id).where(MeetingSession.finalize_due_by(now, finalize_after_seconds))
    return list(db.scalars(query.order_by(MeetingSession.id)))


def unplanned_final_sessions(db: Session, now: datetime, patience_seconds: int = 60) -> list[int]:
    """Return the ids of sessions final for a while whose notifications were never planned."""
    cutoff = now - timedelta(seconds=patience_seconds)
    query = select(MeetingSession.id).where(
        MeetingSession.status == SessionStatus.FINAL,
        MeetingSession.notifications_planned_at.is_(None),
        MeetingSession.finalized_at <= cutoff,
    )
    return list(db.scalars(query.order_by(MeetingSession.id)))


def stale_sessions(db: Session, now: datetime, stale_seconds: int) -> list[tuple[int, int]]:
    """Return (session id, room id) of every live session with no delivery for `stale_seconds`."""
    cutoff = now - timedelta(seconds=stale_seconds)
    rows = db.execute(
        select(MeetingSession.id, MeetingSession.room_id).where(
            MeetingSession.status == SessionStatus.LIVE, MeetingSession.last_delivery_at < cutoff
        )
    )
    return [(session_id, room_id) for session_id, room_id in rows]


def close_stale(db: Session, session_id: int, now: datetime, stale_seconds: int) -> MeetingSession | None:
    """Close one session if it is still live and silent, inferring its end; return it if it was closed."""
    meeting = db.get(MeetingSession, session_id)
    if meeting is None:
        return None
    lock_session_room(db, meeting)
    cutoff = now - timedelta(seconds=stale_seconds)
    if meeting.status != SessionStatus.LIVE:
        return None
    if meeting.last_delivery_at is None or meeting.last_delivery_at >= cutoff:
        return None  # a delivery came in since the sweep looked
    meeting.closed_by_sweeper = True
    # Where the close cuts the room's timeline for deliveries naming no session: fixed now, after every
    # fact the session holds, so nothing already in it falls outside and nothing folded later moves it.
    meeting.sweep_cut_at = last_fact_at(db, meeting.id)
    meeting.status = SessionStatus.ENDED
    meeting.end_received_at = now
    results.record(db, meeting, "sweep", refresh(db, meeting))
    return meeting
