"""The management audit: who changed what through the API or the CLI, when, and what it was before."""

from __future__ import annotations

import getpass
import hashlib
from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session

from workers.models import AuditRecord, MeetingSession, Room
from workers.results import ResultChange
from workers.timefmt import iso_ms

API_ACTOR = "api"  # an unnamed API token's actor; a named one's is `api:<name>` (webhooks.auth)

# The id of the request (or None outside one) a change is made in: the web app sets it for each request,
# so every record a change adds carries it without each core function passing it along.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def cli_actor() -> str:
    """Return the actor a CLI command is recorded as: the operating-system user running it."""
    return f"cli:{getpass.getuser()}"


def record(
    db: Session,
    actor: str,
    action: str,
    *,
    room_id: int | None = None,
    session_id: int | None = None,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditRecord:
    """Add one audit record to `db`'s transaction, so it commits with the change it describes."""
    entry = AuditRecord(
        actor=actor,
        action=action,
        room_id=room_id,
        session_id=session_id,
        subject=subject,
        before=before,
        after=after,
        request_id=request_id or current_request_id.get(),
    )
    db.add(entry)
    return entry


def room_state(room: Room) -> dict[str, Any]:
    """Return what a room's audit records show of it: its settings and token times, never a token."""
    times = {
        "archivedAt": room.archived_at,
        "tokenRotatedAt": room.token_rotated_at,
        "previousTokenExpiresAt": room.previous_token_expires_at,
    }
    return {
        "roomName": room.room_name,
        "options": {name: _masked(name, value) for name, value in room.options.items()},
        "organizerEmail": room.organizer_email,
        "notifyParticipants": room.notify_participants,
        "minAttendancePercent": room.min_attendance_percent,
        **{name: iso_ms(moment) if moment else None for name, moment in times.items()},
    }


# Room options that carry a credential: a stream URL holds the stream's key. Read tokens read the audit,
# so it shows that such an option changed (a digest), never its value.
SECRET_OPTIONS = frozenset({"rtmpOutURL"})


def _masked(name: str, value: Any) -> Any:
    if name in SECRET_OPTIONS and isinstance(value, str):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return value


def record_rebuild(
    db: Session, actor: str, meeting: MeetingSession, change: ResultChange, request_id: str | None = None
) -> None:
    """Record that `actor` rebuilt a session, with its figures before and after."""
    record(
        db,
        actor,
        "session.rebuilt",
        room_id=meeting.room_id,
        session_id=meeting.id,
        subject=meeting.meeting_session_id,
        before=change.figures_before,
        after=change.figures_after,
        request_id=request_id,
    )
