"""RQ jobs for post-meeting notifications: decide once what a session owes, then send each item once.

The ledger (`Notification`, unique per session, recipient and kind) decides what is sent: rows are inserted
with ON CONFLICT DO NOTHING, so duplicate end webhooks, replays, rebuilds and restarts add nothing. Each
row has one send job (job id `notify-send-<id>`, enqueued with unique=True) that commits `sending` before
talking to the server and `sent` after.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workers import mailer, outbound, process
from workers.models import MeetingSession, Room, SessionStatus
from workers.models.base import utcnow
from workers.models.notifications import Notification
from workers.models.notifications import NotificationState as State
from workers.notify import summary_email, thank_you_email
from workers.reports import SessionWithAttendance, session_report
from workers.runtime import Runtime
from workers.settings import Settings
from workers.timefmt import iso_ms

log = logging.getLogger(__name__)

BACKOFF_SECONDS = [30, 120, 600, 1800, 3600]  # after the last, the notification is recorded failed
SEND_TIMEOUT_SECONDS = 30.0
JOB_TIMEOUT_SECONDS = 180  # well above SEND_TIMEOUT_SECONDS: RQ never kills a send mid-conversation
EMAIL_KINDS = {"summary", "thank-you"}
UNCERTAIN = "delivery uncertain: an earlier attempt stopped while sending; not resent to avoid a duplicate"
TRANSIENT = (mailer.TransientMailError, outbound.TransientWebhookError)
PERMANENT = (mailer.PermanentMailError, outbound.PermanentWebhookError)
Delivery = Callable[[], None]


class NotSendable(Exception):
    """What sending needs is missing (a setting, the attendee): record failed, do not retry."""


def session_finalized(session_id: int) -> None:
    """Record once what a final session's notifications are, and queue a send job for each pending one."""
    runtime = process.current()
    with runtime.Session.begin() as db:
        loaded = _load(db, session_id)
        if loaded is None or loaded[1].status != SessionStatus.FINAL:
            return
        meeting = db.get_one(MeetingSession, session_id)
        finalized_at = meeting.finalized_at or utcnow()
        _insert_once(db, _planned(runtime.settings, session_id, *loaded, finalized_at))
        meeting.notifications_planned_at = meeting.notifications_planned_at or utcnow()
    enqueue_pending(runtime, session_id)


def session_amended(session_id: int) -> None:
    """Send `session.amended` to the webhook if a final session's figures changed since its last event."""
    runtime = process.current()
    url = runtime.settings.notify_webhook_url
    if not url:
        return
    with runtime.Session.begin() as db:
        loaded = _load(db, session_id)
        if loaded is None or loaded[1].status != SessionStatus.FINAL:
            return
        events = db.scalars(
            select(Notification)
            .where(
                Notification.session_id == session_id, Notification.recipient == outbound.public_address(url)
            )
            .where(Notification.kind.like("webhook-%"))
            .order_by(Notification.id)
        ).all()
        # Before session.finalized exists there is nothing to amend: it will carry the current figures.
        if not events or _event_data(events[-1]) == loaded[1].model_dump():
            return
        kind = f"webhook-amended-{sum(e.kind.startswith('webhook-amended-') for e in events) + 1}"
        row = _webhook_row(runtime.settings, session_id, kind, "session.amended", loaded[1], utcnow())
        _insert_once(db, [row])
    enqueue_pending(runtime, session_id)


def enqueue_pending(runtime: Runtime, session_id: int) -> None:
    """Queue the send job of each unfinished notification of a session, unless it has one already."""
    unfinished = Notification.state.in_([State.PENDING, State.SENDING])
    with runtime.Session() as db:
        ids = db.scalars(
            select(Notification.id).where(Notification.session_id == session_id, unfinished)
        ).all()
    queue, retry = runtime.queue(), Retry(max=len(BACKOFF_SECONDS), interval=BACKOFF_SECONDS)
    for notification_id in ids:
        # A duplicate job is queued, running, waiting to retry or done: it owns the notification.
        with suppress(DuplicateJobError):
            queue.enqueue(
                send_notification,
                notification_id,
                job_id=f"notify-send-{notification_id}",
                unique=True,
                retry=retry,
                job_timeout=JOB_TIMEOUT_SECONDS,
            )


def send_notification(notification_id: int) -> None:
    """Send one notification unless it is finished: commit `sending` before, `sent` after."""
    runtime = process.current()
    deliver, seen = _ready(runtime, notification_id)
    if deliver is None or not _move(runtime, notification_id, seen, State.SENDING, attempt=True):
        return  # finished, not sendable, or another attempt moved it first
    try:
        deliver()
    except TRANSIENT as error:
        job = get_current_job()
        if job is not None and job.retries_left:
            _move(runtime, notification_id, State.SENDING, State.PENDING, f"will retry: {error}")
        else:
            _move(runtime, notification_id, State.SENDING, State.FAILED, f"gave up after retries: {error}")
        raise
    except PERMANENT as error:
        _move(runtime, notification_id, State.SENDING, State.FAILED, str(error))
        return
    _move(runtime, notification_id, State.SENDING, State.SENT)


def notifications_for(db: Session, session_id: int) -> list[dict[str, Any]]:
    """List a session's notifications as the session view shows them."""
    query = select(Notification).where(Notification.session_id == session_id).order_by(Notification.id)
    return [
        {
            "recipient": note.recipient,
            "kind": note.kind,
            "state": note.state,
            "reason": note.reason,
            "attempts": note.attempts,
            "updatedAt": iso_ms(note.updated_at),
        }
        for note in db.scalars(query)
    ]


def _load(db: Session, session_id: int) -> tuple[Room, SessionWithAttendance] | None:
    meeting = db.get(MeetingSession, session_id)
    if meeting is None:
        return None
    room = db.get_one(Room, meeting.room_id)
    return room, session_report(db, meeting, room.room_name)


def _planned(
    settings: Settings, session_id: int, room: Room, report: SessionWithAttendance, at: datetime
) -> list[dict[str, Any]]:
    addresses = [(room.organizer_email, "summary")] if room.organizer_email else []
    if room.notify_participants:
        addresses += [(row.email, "thank-you") for row in report.attendance if row.email]
    emails = (_email_row(settings, session_id, *address) for address in addresses)
    # Two people may share an address; one row per key keeps the single INSERT free of self-conflicts.
    rows = list({(row["recipient"], row["kind"]): row for row in emails}.values())
    if settings.notify_webhook_url:
        rows.append(_webhook_row(settings, session_id, "webhook-finalized", "session.finalized", report, at))
    return rows


def _email_row(settings: Settings, session_id: int, address: str, kind: str) -> dict[str, Any]:
    recipient, reason = _address(address), None
    if recipient is None:
        recipient, reason = address.strip().lower()[:320], "not a valid email address"
    elif settings.smtp_url is None:
        reason = "SMTP_URL is not set"
    elif not settings.mail_from:
        reason = "MAIL_FROM is not set"
    return _row(session_id, recipient, kind, reason, None)


def _address(address: str | None) -> str | None:
    # Addresses come from webhooks: a malformed or header-injecting one never reaches a To: line.
    try:
        return validate_email(address or "", check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _webhook_row(
    settings: Settings, session_id: int, kind: str, event: str, report: SessionWithAttendance, at: datetime
) -> dict[str, Any]:
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


def _insert_once(db: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        key = ["session_id", "recipient", "kind"]
        db.execute(insert(Notification).values(rows).on_conflict_do_nothing(index_elements=key))


def _event_data(note: Notification) -> Any:
    return json.loads(note.payload)["data"] if note.payload else None


def _ready(runtime: Runtime, notification_id: int) -> tuple[Delivery | None, str]:
    with runtime.Session() as db:
        note = db.get(Notification, notification_id)
        if note is None or note.state in (State.SENT, State.FAILED):
            return None, ""
        if note.state == State.SENDING and note.kind in EMAIL_KINDS:
            # The last attempt died mid-send (a killed worker): the mail may have gone, so never resend.
            _move(runtime, notification_id, note.state, State.FAILED, UNCERTAIN)
            return None, note.state
        try:
            # A webhook found `sending` is sent again: the same webhook-id lets its receiver drop a repeat.
            return _prepare(runtime.settings, db, note), note.state
        except NotSendable as error:
            _move(runtime, notification_id, note.state, State.FAILED, str(error))
            return None, note.state


def _prepare(settings: Settings, db: Session, note: Notification) -> Delivery:
    if note.kind in EMAIL_KINDS:
        return _prepare_email(settings, db, note)
    if not settings.notify_webhook_url or not settings.notify_webhook_secret:
        raise NotSendable("NOTIFY_WEBHOOK_URL or NOTIFY_WEBHOOK_SECRET is not set")
    url, key = (
        settings.notify_webhook_url,
        outbound.signing_key(settings.notify_webhook_secret.get_secret_value()),
    )
    message_id, body = note.message_id, (note.payload or "").encode()
    return lambda: outbound.post_event(url, key, message_id, body, SEND_TIMEOUT_SECONDS)


def _prepare_email(settings: Settings, db: Session, note: Notification) -> Delivery:
    if settings.smtp_url is None or not settings.mail_from:
        raise NotSendable("SMTP_URL or MAIL_FROM is not set")
    try:
        server = mailer.parse_smtp_url(settings.smtp_url.get_secret_value())
    except ValueError as error:
        raise NotSendable(str(error)) from None  # the message names SMTP_URL, never its content
    loaded = _load(db, note.session_id)
    assert loaded is not None
    report, sender = loaded[1], settings.mail_from
    if note.kind == "summary":
        message = summary_email(report, sender, note.recipient, note.message_id)
    else:
        attendee = next((a for a in report.attendance if _address(a.email) == note.recipient), None)
        if attendee is None:
            raise NotSendable("no longer an attendee of this session")
        message = thank_you_email(report, attendee, sender, note.recipient, note.message_id)
    return lambda: mailer.send_mail(server, message, SEND_TIMEOUT_SECONDS)


def _move(
    runtime: Runtime, note_id: int, seen: str, state: str, reason: str | None = None, attempt: bool = False
) -> bool:
    # Conditional on the state last seen, so of two racing attempts only one moves it; committed at once.
    now = utcnow()
    values: dict[str, Any] = {"state": state, "reason": reason, "updated_at": now}
    values["sent_at"] = now if state == State.SENT else None
    if attempt:
        values["attempts"] = Notification.attempts + 1
    where = (Notification.id == note_id, Notification.state == seen)
    with runtime.Session.begin() as db:
        moved = db.execute(update(Notification).where(*where).values(values))
    log.info("notification %d: %s -> %s", note_id, seen, state)
    return bool(moved.rowcount)  # type: ignore[attr-defined]
