"""What a meeting session owes in post-meeting notifications: the ledger rows, each decided once.

Rows are inserted with ON CONFLICT DO NOTHING on (session, recipient, kind), so duplicate end webhooks,
replays, rebuilds and restarts add nothing to what was decided the first time.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workers import outbound
from workers.models import MeetingSession, Room
from workers.models.notifications import Notification
from workers.models.notifications import NotificationState as State
from workers.reports import SessionWithAttendance, WireModel, session_report
from workers.settings import Settings
from workers.timefmt import UtcTime


class NotificationOut(WireModel):
    """One post-meeting notification and where it is, as the session view shows it."""

    recipient: str
    kind: str
    state: State
    reason: str | None
    attempts: int
    updated_at: UtcTime


def notifications_for(db: Session, session_id: int) -> list[NotificationOut]:
    """List a session's notifications, oldest first."""
    query = select(Notification).where(Notification.session_id == session_id).order_by(Notification.id)
    return [NotificationOut.model_validate(note, from_attributes=True) for note in db.scalars(query)]


def load_report(db: Session, session_id: int) -> tuple[Room, SessionWithAttendance] | None:
    """Return a session's room and report, or None if there is no such session."""
    meeting = db.get(MeetingSession, session_id)
    if meeting is None:
        return None
    room = db.get_one(Room, meeting.room_id)
    return room, session_report(db, meeting, room.room_name)


def planned_rows(
    settings: Settings, session_id: int, room: Room, report: SessionWithAttendance, at: datetime
) -> list[dict[str, Any]]:
    """Return the ledger rows a final session owes: organizer summary, thank-yous, the finalized event."""
    addresses = [(room.organizer_email, "summary")] if room.organizer_email else []
    if room.notify_participants:
        addresses += [(row.email, "thank-you") for row in report.attendance if row.email]
    emails = (_email_row(settings, session_id, *address) for address in addresses)
    # Two people may share an address; one row per key keeps the single INSERT free of self-conflicts.
    rows = list({(row["recipient"], row["kind"]): row for row in emails}.values())
    if settings.notify_webhook_url:
        rows.append(webhook_row(settings, session_id, "webhook-finalized", "session.finalized", report, at))
    return rows


def _email_row(settings: Settings, session_id: int, address: str, kind: str) -> dict[str, Any]:
    recipient, reason = normalized_address(address), None
    if recipient is None:
        recipient, reason = address.strip().lower()[:320], "not a valid email address"
    elif settings.smtp_url is None:
        reason = "SMTP_URL is not set"
    elif not settings.mail_from:
        reason = "MAIL_FROM is not set"
    return _row(session_id, recipient, kind, reason, None)


def normalized_address(address: str | None) -> str | None:
    """Return an email address normalized and lower-cased, or None if it is not a valid one."""
    # Addresses come from webhooks: a malformed or header-injecting one never reaches a To: line.
    try:
        return validate_email(address or "", check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def webhook_row(
    settings: Settings, session_id: int, kind: str, event: str, report: SessionWithAttendance, at: datetime
) -> dict[str, Any]:
    """Return the ledger row of one signed webhook event carrying the session's report."""
    assert settings.notify_webhook_url
    reason = None if settings.notify_webhook_secret else "NOTIFY_WEBHOOK_SECRET is not set"
    body = outbound.event_body(event, report.model_dump(), at).decode()
    return _row(session_id, outbound.public_address(settings.notify_webhook_url), kind, reason, body)


def _row(
    session_id: int, recipient: str, kind: str, reason: str | None, payload: str | None
) -> dict[str, Any]:
    state = State.FAILED if reason else State.PENDING
    return {
        "session_id": session_id,
        "recipient": recipient,
        "kind": kind,
        "state": state,
        "reason": reason,
        "message_id": f"msg_{uuid.uuid4().hex}",
        "payload": payload,
    }


def insert_once(db: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ledger rows, skipping any (session, recipient, kind) already decided."""
    if rows:
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        key = ["session_id", "recipient", "kind"]
        db.execute(insert(Notification).values(rows).on_conflict_do_nothing(index_elements=key))


def event_data(note: Notification) -> Any:
    """Return the `data` a webhook notification carries (None for an email)."""
    return json.loads(note.payload)["data"] if note.payload else None
