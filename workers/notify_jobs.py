"""RQ jobs for post-meeting notifications: decide once what a session owes, then send each item once.

What is sent is the ledger's to decide (workers.notifications.ledger). Each ledger row has one send job
(job id `notify-send-<id>`, enqueued with unique=True on the notify queue, which the worker's notify process
works apart from folding) that commits `sending` before talking to the server and `sent` after.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextlib import suppress
from datetime import date
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workers.models import MeetingSession, Room, SessionStatus
from workers.models.base import utcnow
from workers.models.notifications import Notification
from workers.models.notifications import NotificationState as State
from workers.notifications import senders
from workers.notifications.emails import absence_email, summary_email, thank_you_email
from workers.notifications.ledger import (
    ABSENCE_MAIL,
    UNTRUSTED,
    absence_rows,
    event_data,
    insert_once,
    is_email,
    load_report,
    normalized_address,
    planned_rows,
    webhook_row,
)
from workers.rooms import trusts_participant_emails
from workers.runtime import metrics, process
from workers.runtime.process import Runtime
from workers.runtime.settings import Settings
from workers.series import Streak, absence_streaks
from workers.statuses import absence_alert_after
from workers.timefmt import on_clock, zone_of
from workers.wire import AbsenceStreak

log = logging.getLogger(__name__)

BACKOFF_SECONDS = [30, 120, 600, 1800, 3600]  # after the last, the notification is recorded failed
# The waits of the longest send, an SMTP conversation: connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL,
# RCPT, DATA, the message, QUIT. Each is bounded by NOTIFY_TIMEOUT_SECONDS, and RQ stops a send that takes
# longer than all of them together (a server that dribbles its answers a byte at a time).
SEND_STEPS = 11
UNCERTAIN = "delivery uncertain: an earlier attempt stopped while sending; not resent to avoid a duplicate"
TRANSIENT = (senders.TransientMailError, senders.TransientWebhookError)
PERMANENT = (senders.PermanentMailError, senders.PermanentWebhookError)
Delivery = Callable[[], None]


class NotSendable(Exception):
    """What sending needs is missing (a setting, the attendee): record failed, do not retry."""


def session_finalized(session_id: int) -> None:
    """Record once what a final session's notifications are, and queue a send job for each pending one."""
    runtime = process.current()
    with runtime.Db.begin() as db:
        loaded = load_report(db, session_id)
        if loaded is None or loaded[1].status != SessionStatus.FINAL:
            return
        meeting = db.get_one(MeetingSession, session_id)
        finalized_at = meeting.finalized_at or utcnow()
        insert_once(db, planned_rows(runtime.settings, session_id, *loaded, finalized_at))
        room = loaded[0]
        streaks: list[Streak] = []
        if (alert_after := absence_alert_after(room.options)) is not None:
            streaks = absence_streaks(db, room, meeting, alert_after)
            insert_once(db, absence_rows(runtime.settings, room, streaks, finalized_at))
        meeting.notifications_planned_at = meeting.notifications_planned_at or utcnow()
    # An alert is its run's first session's: queue those too.
    for ledger_session_id in sorted({session_id, *(streak.first_session_id for streak in streaks)}):
        enqueue_pending(runtime, ledger_session_id)


def session_amended(session_id: int) -> None:
    """Send `session.amended` to the webhook if a final session's figures changed since its last event."""
    runtime = process.current()
    url = runtime.settings.notify_webhook_url
    if not url:
        return
    with runtime.Db.begin() as db:
        loaded = load_report(db, session_id)
        if loaded is None or loaded[1].status != SessionStatus.FINAL:
            return
        events = db.scalars(
            select(Notification)
            .where(
                Notification.session_id == session_id, Notification.recipient == senders.public_address(url)
            )
            .where(Notification.kind.like("webhook-%"))
            .order_by(Notification.id)
        ).all()
        # Before session.finalized exists there is nothing to amend: it will carry the current figures.
        if not events or event_data(events[-1]) == loaded[1].model_dump():
            return
        kind = f"webhook-amended-{sum(e.kind.startswith('webhook-amended-') for e in events) + 1}"
        row = webhook_row(runtime.settings, session_id, kind, "session.amended", loaded[1], utcnow())
        insert_once(db, [row])
    enqueue_pending(runtime, session_id)


def enqueue_pending(runtime: Runtime, session_id: int | None = None) -> None:
    """Queue the send job of each unfinished notification (of a session, or of all), unless it has one."""
    query = select(Notification.id).where(Notification.state.in_([State.PENDING, State.SENDING]))
    if session_id is not None:
        query = query.where(Notification.session_id == session_id)
    with runtime.Db() as db:
        ids = db.scalars(query.order_by(Notification.id)).all()
    queue, retry = runtime.notify_queue(), Retry(max=len(BACKOFF_SECONDS), interval=BACKOFF_SECONDS)
    for notification_id in ids:
        # A duplicate job is queued, running, waiting to retry or done: it owns the notification.
        with suppress(DuplicateJobError):
            queue.enqueue(
                send_notification,
                notification_id,
                job_id=f"notify-send-{notification_id}",
                unique=True,
                retry=retry,
                job_timeout=job_timeout(runtime.settings),
            )


def job_timeout(settings: Settings) -> int:
    """Return the RQ timeout of a send job: every step of the longest send at NOTIFY_TIMEOUT_SECONDS."""
    return math.ceil(settings.notify_timeout_seconds * SEND_STEPS) + 1


def send_notification(notification_id: int) -> None:
    """Send one notification unless it is finished: commit `sending` before, `sent` after."""
    runtime = process.current()
    deliver, seen = _ready(runtime, notification_id)
    if deliver is None or not _move(runtime, notification_id, seen, State.SENDING, attempt=True):
        return  # finished, not sendable, or another attempt moved it first
    try:
        deliver()
    except TRANSIENT as error:
        if _retries_left():
            _move(runtime, notification_id, State.SENDING, State.PENDING, f"will retry: {error}")
        else:
            _move(runtime, notification_id, State.SENDING, State.FAILED, f"gave up after retries: {error}")
        raise
    except PERMANENT as error:
        _move(runtime, notification_id, State.SENDING, State.FAILED, str(error))
        return
    except JobTimeoutException:
        _stopped_by_timeout(runtime, notification_id)
        raise
    _move(runtime, notification_id, State.SENDING, State.SENT)


def _retries_left() -> bool:
    job = get_current_job()
    return job is not None and bool(job.retries_left)


def _stopped_by_timeout(runtime: Runtime, notification_id: int) -> None:
    # Left `sending` for the retry to settle (see _ready); with no retry left nothing else would, and the
    # job's unique id would keep enqueue_pending from queuing another: it may have gone, so record failed.
    reason = f"stopped by the job timeout ({job_timeout(runtime.settings)} s)"
    if _retries_left():
        _move(runtime, notification_id, State.SENDING, State.SENDING, reason)
    else:
        _move(runtime, notification_id, State.SENDING, State.FAILED, _uncertain(reason))


def _ready(runtime: Runtime, notification_id: int) -> tuple[Delivery | None, str]:
    with runtime.Db() as db:
        note = db.get(Notification, notification_id)
        if note is None or note.state in (State.SENT, State.FAILED):
            return None, ""
        if note.state == State.SENDING and is_email(note.kind):
            # The last attempt died mid-send (a killed worker): the mail may have gone, so never resend.
            _move(runtime, notification_id, note.state, State.FAILED, _uncertain(note.reason))
            return None, note.state
        try:
            # A webhook found `sending` is sent again: the same webhook-id lets its receiver drop a repeat.
            return _prepare(runtime.settings, db, note), note.state
        except NotSendable as error:
            _move(runtime, notification_id, note.state, State.FAILED, str(error))
            return None, note.state


def _prepare(settings: Settings, db: Session, note: Notification) -> Delivery:
    if is_email(note.kind):
        return _prepare_email(settings, db, note)
    if not settings.notify_webhook_url or not settings.notify_webhook_secret:
        raise NotSendable("NOTIFY_WEBHOOK_URL or NOTIFY_WEBHOOK_SECRET is not set")
    url, key = (
        settings.notify_webhook_url,
        senders.signing_key(settings.notify_webhook_secret.get_secret_value()),
    )
    message_id, body = note.message_id, (note.payload or "").encode()
    return lambda: senders.post_event(url, key, message_id, body, settings.notify_timeout_seconds)


def _prepare_email(settings: Settings, db: Session, note: Notification) -> Delivery:
    if settings.smtp_url is None or not settings.mail_from:
        raise NotSendable("SMTP_URL or MAIL_FROM is not set")
    try:
        server = senders.parse_smtp_url(settings.smtp_url.get_secret_value())
    except ValueError as error:
        raise NotSendable(str(error)) from None  # the message names SMTP_URL, never its content
    sender = settings.mail_from
    assert note.session_id is not None  # every email is about a session (only delivery.failed is not)
    if note.kind.startswith(ABSENCE_MAIL):  # the alert as planned, whatever the session says since
        streak = AbsenceStreak.model_validate(event_data(note))
        held_on = _organizer_date(db, streak.meeting_session_id)
        message = absence_email(
            streak, held_on, sender, note.recipient, note.message_id, settings.public_base_url
        )
        return lambda: senders.send_mail(server, message, settings.notify_timeout_seconds)
    loaded = load_report(db, note.session_id)
    assert loaded is not None
    room, report = loaded
    if note.kind == "summary":
        message = summary_email(
            report, sender, note.recipient, note.message_id, zone_of(room.options), settings.public_base_url
        )
    else:
        if not trusts_participant_emails(room.options):  # the organizer withdrew it since planning
            raise NotSendable(UNTRUSTED)
        attendee = next((a for a in report.attendance if normalized_address(a.email) == note.recipient), None)
        if attendee is None:
            raise NotSendable("no longer an attendee of this session")
        message = thank_you_email(
            report, attendee, sender, note.recipient, note.message_id, zone_of(room.options)
        )
    return lambda: senders.send_mail(server, message, settings.notify_timeout_seconds)


def _organizer_date(db: Session, meeting_session_id: str) -> date:
    # The date the organizer's calendar shows for the meeting: 23:30 UTC is the next day in Paris. The
    # latest meeting, the one that made the run reach the option, not the run's first (the ledger's).
    meeting = db.execute(
        select(MeetingSession).where(MeetingSession.meeting_session_id == meeting_session_id)
    ).scalar_one()
    room = db.get_one(Room, meeting.room_id)
    return on_clock(meeting.began_at, zone_of(room.options)).date()


def _uncertain(last_reason: str | None) -> str:
    return f"{UNCERTAIN} ({last_reason})" if last_reason else UNCERTAIN


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
    with runtime.Db.begin() as db:
        moved = db.execute(update(Notification).where(*where).values(values))
    log.info("notification %d: %s -> %s", note_id, seen, state)
    if moved.rowcount and (attempt or state != seen):  # type: ignore[attr-defined]
        metrics.count_notification(runtime.redis, state)  # a note on a row still `sending` is no attempt
    return bool(moved.rowcount)  # type: ignore[attr-defined]
