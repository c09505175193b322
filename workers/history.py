"""Record each change to a session's results, with its cause, in the append-only trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import MeetingSession, SessionChange
from workers.reports import WireModel
from workers.session_results import ResultChange
from workers.timefmt import UtcTime


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


class HistoryEntry(WireModel):
    """One change to a session's results and its cause, as the history view shows it."""

    id: int
    changed_at: UtcTime
    cause: str
    delivery_ids: list[int]
    job_id: str | None
    figures: dict[str, Any]
    people: list[dict[str, Any]]


def trail(
    db: Session, meeting: MeetingSession, after: int | None = None, limit: int | None = None
) -> list[HistoryEntry]:
    """Return the session's changes, oldest first: all, or a page after id `after`."""
    query = select(SessionChange).where(SessionChange.session_id == meeting.id)
    if after is not None:
        query = query.where(SessionChange.id > after)
    entries = db.scalars(query.order_by(SessionChange.id).limit(limit))
    return [HistoryEntry.model_validate(entry, from_attributes=True) for entry in entries]
