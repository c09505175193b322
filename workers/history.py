"""Record each change to a session's results, with its cause, in the append-only trail."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from workers.models import MeetingSession, SessionChange
from workers.session_results import ResultChange


def record(
    db: Session,
    meeting: MeetingSession,
    cause: str,
    change: ResultChange,
    *,
    delivery_ids: Sequence[int] = (),
    job_id: str | None = None,
) -> SessionChange | None:
    """Append the change to the session's trail, unless nothing a report shows changed."""
    if not change.changed:
        return None
    entry = SessionChange(
        session_id=meeting.id,
        cause=cause,
        delivery_ids=sorted(delivery_ids),
        job_id=job_id,
        figures=change.figures_after,
        people=change.people,
    )
    db.add(entry)
    return entry
