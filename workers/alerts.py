"""Alerts: a delivery that failed for good, and a live session silent for STALE_SESSION_SECONDS.

Each is counted (rollcall_alerts) and, when NOTIFY_WEBHOOK_URL is set, announced by a signed event
(`delivery.failed`, `session.stale`) written to the notification ledger in the transaction that found it,
so it is sent once, with the retries and the signing of `session.finalized`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import Delivery, MeetingSession, Room
from workers.notifications.ledger import insert_once, load_report, webhook_row
from workers.runtime.settings import Settings
from workers.wire import DeliveryFailedAlert

DELIVERY_FAILED = "delivery.failed"
SESSION_STALE = "session.stale"


def delivery_failed(db: Session, settings: Settings, delivery_id: int, at: datetime) -> None:
    """Add the `delivery.failed` event of a delivery just marked failed to the ledger (once per delivery)."""
    if not settings.notify_webhook_url:
        return
    delivery, room_name, meeting_session_id = db.execute(
        select(Delivery, Room.room_name, MeetingSession.meeting_session_id)
        .join(Room, Room.id == Delivery.room_id)
        .outerjoin(MeetingSession, MeetingSession.id == Delivery.session_id)
        .where(Delivery.id == delivery_id)
    ).one()
    alert = DeliveryFailedAlert(
        id=delivery.id,
        room=room_name,
        event=delivery.event,
        status_reason=delivery.status_reason,
        received_at=delivery.received_at,
        meeting_session_id=meeting_session_id or delivery.meeting_session_ref,
        participant_session_id=delivery.participant_session_id,
    )
    row = webhook_row(settings, None, "delivery-failed", DELIVERY_FAILED, alert, at)
    insert_once(db, [{**row, "delivery_id": delivery_id}], about="delivery_id")


def session_stale(db: Session, settings: Settings, session_id: int, at: datetime) -> None:
    """Add the `session.stale` event of a live session found silent, with its report, to the ledger (once)."""
    loaded = load_report(db, session_id)
    if not settings.notify_webhook_url or loaded is None:
        return
    insert_once(db, [webhook_row(settings, session_id, "webhook-stale", SESSION_STALE, loaded[1], at)])
