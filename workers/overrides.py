"""Status overrides: an organizer's word on one person's status in one session, with its audit and history.

An override is laid over the computed status when a session is judged (workers.reports.judge_sessions) and
nothing that folds or rebuilds a session touches it, so it survives every rebuild. Setting or removing one
writes the override, a management audit record and an entry in the session's history in the caller's one
transaction, so none of the three is ever committed without the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from workers import audit
from workers.jobs import notify_amended
from workers.locks import lock_session_room
from workers.models import MeetingSession, Room, SessionStatus, StatusOverride
from workers.models.base import utcnow
from workers.models.roster import REASON_LENGTH
from workers.reports import person_status
from workers.results import ResultChange, figures, record
from workers.statuses import OverridableStatus
from workers.timefmt import iso_ms
from workers.wire import PersonStatus

CAUSE = "override"  # the session history's cause for both setting and removing one


class OverrideRequest(BaseModel):
    """The body of PUT /api/sessions/{id}/people/{participantKey}/status."""

    model_config = ConfigDict(extra="forbid")

    status: OverridableStatus
    # PostgreSQL text cannot hold NUL: refused here, naming the field, rather than by the database.
    reason: Annotated[str, StringConstraints(max_length=REASON_LENGTH, pattern=r"^[^\x00]*$")] | None = None


class UnknownPerson(LookupError):
    """The person neither came to the session, nor was expected at it, nor has an override in it."""


class NoOverride(LookupError):
    """The person has no override in the session to remove."""


@dataclass(frozen=True)
class Amendment:
    """What an override's change did to a session, for announce() once it is committed."""

    session_id: int
    changed: bool  # False: the same status and reason again, nothing written
    final: bool  # other systems heard the session's report


def set_override(
    db: Session, meeting: MeetingSession, participant_key: str, wanted: OverrideRequest, actor: str
) -> tuple[PersonStatus, Amendment]:
    """Set (or replace) a person's status in a session; return their status as the session now judges it.

    The same status and reason again change nothing: no audit record, no history entry, no event.
    """
    room = _locked_room(db, meeting)
    if person_status(db, meeting, room, participant_key) is None:
        raise UnknownPerson(participant_key)
    row = _override_of(db, meeting, participant_key)
    before = _shown(row)
    changed = row is None or (row.status, row.reason) != (wanted.status, wanted.reason)
    if row is None:
        row = StatusOverride(session_id=meeting.id, participant_key=participant_key)
        db.add(row)
    if changed:
        row.status, row.reason, row.set_by, row.set_at = wanted.status, wanted.reason, actor, utcnow()
        _record(db, meeting, participant_key, actor, "status.overridden", before, _shown(row))
        db.flush()
    judged = person_status(db, meeting, room, participant_key)
    assert judged is not None  # they have an override now
    return judged, _amendment(meeting, changed)


def clear_override(db: Session, meeting: MeetingSession, participant_key: str, actor: str) -> Amendment:
    """Remove a person's override in a session, so the computed status stands again."""
    _locked_room(db, meeting)
    row = _override_of(db, meeting, participant_key)
    if row is None:
        raise NoOverride(participant_key)
    before = _shown(row)
    db.delete(row)
    _record(db, meeting, participant_key, actor, "status.override_removed", before, None)
    return _amendment(meeting, changed=True)


def announce(queue: Queue, amendment: Amendment) -> None:
    """Tell other systems a final session's report changed, as for a late delivery; call after the commit."""
    if amendment.changed and amendment.final:
        notify_amended(queue, {amendment.session_id})


def _amendment(meeting: MeetingSession, changed: bool) -> Amendment:
    return Amendment(meeting.id, changed, meeting.status == SessionStatus.FINAL)


def _locked_room(db: Session, meeting: MeetingSession) -> Room:
    # The room's row lock, as every writer of its sessions takes: two overrides of one person at once
    # would otherwise both find none and both insert.
    lock_session_room(db, meeting)
    return db.get_one(Room, meeting.room_id)


def _override_of(db: Session, meeting: MeetingSession, participant_key: str) -> StatusOverride | None:
    return db.scalar(
        select(StatusOverride).where(
            StatusOverride.session_id == meeting.id, StatusOverride.participant_key == participant_key
        )
    )


def _shown(row: StatusOverride | None) -> dict[str, Any] | None:
    # As the session answer shows an override (wire.OverrideOut), for the audit and the history alike.
    if row is None:
        return None
    return {"status": row.status, "reason": row.reason, "setBy": row.set_by, "setAt": iso_ms(row.set_at)}


def _record(
    db: Session,
    meeting: MeetingSession,
    participant_key: str,
    actor: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record(
        db,
        actor,
        action,
        room_id=meeting.room_id,
        session_id=meeting.id,
        subject=participant_key,
        before=before,
        after=after,
    )
    # Who, when (the entry's changedAt), why (the reason) and whom, in the trail a session's readers see;
    # the session's own figures stay as they are.
    person = {"participantKey": participant_key, "by": actor, "override": after, "before": before}
    now = figures(meeting)
    record(db, meeting, CAUSE, ResultChange(now, now, [person]))
