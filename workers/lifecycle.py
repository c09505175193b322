"""A meeting session's life after its deliveries: finalizing it, and sweeping stale sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers import history
from workers.models import MeetingSession, SessionStatus
from workers.recompute import ResultChange, figures, recompute_session


def finalize(db: Session, meeting_id: int, now: datetime, finalize_after_seconds: int) -> bool:
    """Mark an ended session final once its grace period is over; say whether it was."""
    meeting = db.get(MeetingSession, meeting_id)
    if meeting is None or meeting.status != SessionStatus.ENDED or meeting.end_received_at is None:
        return False
    if meeting.end_received_at + timedelta(seconds=finalize_after_seconds) > now:
        return False
    before = figures(meeting)
    meeting.status = SessionStatus.FINAL
    meeting.finalized_at = now
    history.record(db, meeting, "finalize", ResultChange(before, figures(meeting)))
    return True


def sweep_stale(db: Session, now: datetime, stale_seconds: int) -> list[MeetingSession]:
    """Close live sessions that had no delivery for `stale_seconds`, inferring their end."""
    cutoff = now - timedelta(seconds=stale_seconds)
    stale = db.scalars(
        select(MeetingSession).where(
            MeetingSession.status == SessionStatus.LIVE, MeetingSession.last_delivery_at < cutoff
        )
    ).all()
    for meeting in stale:
        meeting.closed_by_sweeper = True
        meeting.status = SessionStatus.ENDED
        meeting.end_received_at = now
        history.record(db, meeting, "sweep", recompute_session(db, meeting))
    return list(stale)
