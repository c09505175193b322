"""Notifications: what a meeting session owes after it, as ledger rows, each decided once.

Rows are inserted with ON CONFLICT DO NOTHING on (session, recipient, kind), so duplicate end webhooks,
replays, rebuilds and restarts add nothing to what was decided the first time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workers.models import MeetingSession, Room
from workers.models.notifications import Notification
from workers.models.notifications import NotificationState as State
from workers.notifications import senders
from workers.reports import session_report
from workers.rooms import trusts_participant_emails
from workers.runtime.settings import Settings
from workers.series import Streak
from workers.wire import NotificationOut, SessionWithAttendance, WireModel

# A participant's address is whatever they typed when joining: mailing it would let anyone use Rollcall
# to send mail to anyone. Until rosters vouch for addresses, only the room's organizer can allow it.
UNTRUSTED = "not sent: the address came from the participant and the room does not trust participant emails"


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
    return room, session_report(db, meeting, room)


def planned_rows(
    settings: Settings, session_id: int, room: Room, report: SessionWithAttendance, at: datetime
) -> list[dict[str, Any]]:
    """Return the ledger rows a final session owes: organizer summary, thank-yous, the finalized event."""
    # (address, kind, why not): the organizer gave theirs through the API; participants typed theirs
    addresses: list[tuple[str, str, str | None]] = []
    if room.organizer_email:
        addresses.append((room.organizer_email, "summary", None))
    if room.notify_participants:
        refused = None if trusts_participant_emails(room.options) else UNTRUSTED
        addresses += [(row.email, "thank-you", refused) for row in report.attendance if row.email]
    emails = (_email_row(settings, session_id, *address) for address in addresses)
    # Two people may share an address (two devices, two keys): the ledger's key (session, recipient, kind)
    # gives them one thank-you, and one row per key keeps the single INSERT free of self-conflicts.
    # Rows that can be sent come last, so that a malformed copy of an address never displaces them.
    ordered = sorted(emails, key=lambda row: row["reason"] is None)
    rows = list({(row["recipient"], row["kind"]): row for row in ordered}.values())
    if settings.notify_webhook_url:
        rows.append(webhook_row(settings, session_id, "webhook-finalized", "session.finalized", report, at))
    return rows


def _email_row(
    settings: Settings, session_id: int, address: str, kind: str, refused: str | None
) -> dict[str, Any]:
    recipient = normalized_address(address)
    if recipient is None:
        return _row(session_id, address.strip().lower()[:320], kind, "not a valid email address", None)
    return _row(session_id, recipient, kind, refused or _mail_unset(settings), None)


def _mail_unset(settings: Settings) -> str | None:
    if settings.smtp_url is None:
        return "SMTP_URL is not set"
    return None if settings.mail_from else "MAIL_FROM is not set"


def normalized_address(address: str | None) -> str | None:
    """Return an email address normalized and lower-cased, or None if it is not a valid one."""
    # Addresses come from webhooks: a malformed or header-injecting one never reaches a To: line.
    try:
        return validate_email((address or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def webhook_row(
    settings: Settings, session_id: int | None, kind: str, event: str, report: WireModel, at: datetime
) -> dict[str, Any]:
    """Return the ledger row of one signed webhook event carrying `report` (the session's, or an alert)."""
    assert settings.notify_webhook_url
    reason = None if settings.notify_webhook_secret else "NOTIFY_WEBHOOK_SECRET is not set"
    body = senders.event_body(event, report.model_dump(), at).decode()
    return _row(session_id, senders.public_address(settings.notify_webhook_url), kind, reason, body)


def _row(
    session_id: int | None, recipient: str, kind: str, reason: str | None, payload: str | None
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


def insert_once(db: Session, rows: list[dict[str, Any]], about: str = "session_id") -> None:
    """Insert ledger rows, skipping any (session or `about` delivery_id, recipient, kind) already decided."""
    if rows:
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        key = [about, "recipient", "kind"]
        db.execute(insert(Notification).values(rows).on_conflict_do_nothing(index_elements=key))


def event_data(note: Notification) -> Any:
    """Return the `data` a webhook notification carries (None for an email)."""
    return json.loads(note.payload)["data"] if note.payload else None


# Absence alerts (issue 13): a roster member's run of absences reaching the room's absenceAlertAfter. A run
# is known by its first absent session, and its rows are that session's: (session, recipient, kind) makes one
# alert per run, even when an excused session lets it reach the option again with a later one. The kind
# names the person by a hash, as a key may be far longer than the kind's 64 characters.
ABSENCE_MAIL = "absence-mail-"
ABSENCE_HOOK = "absence-hook-"
ABSENCE_EVENT = "person.absence_streak"


def is_email(kind: str) -> bool:
    """Return whether a notification of this kind is an email (else a webhook event)."""
    return kind in ("summary", "thank-you") or kind.startswith(ABSENCE_MAIL)


def absence_rows(settings: Settings, room: Room, streaks: list[Streak], at: datetime) -> list[dict[str, Any]]:
    """Return the ledger rows of absence alerts, each run's: an organizer email and a signed event."""
    rows = []
    for streak in streaks:
        alert, run = streak.alert, streak.first_session_id
        person = hashlib.sha256(alert.participant_key.encode()).hexdigest()[:32]
        # Both carry the alert as it stood when planned: a retry or a later roster edit changes nothing.
        body = senders.event_body(ABSENCE_EVENT, alert.model_dump(), at).decode()
        if room.organizer_email:
            email = _email_row(settings, run, room.organizer_email, ABSENCE_MAIL + person, None)
            rows.append({**email, "payload": body})
        if settings.notify_webhook_url:
            rows.append(webhook_row(settings, run, ABSENCE_HOOK + person, ABSENCE_EVENT, alert, at))
    return rows
