"""Archived rooms: after a grace period their webhook URLs take deliveries only for meetings they have.

A room archived while a meeting is under way must not lose that meeting's late leaves and end, so the
receiver keeps taking everything for ARCHIVE_GRACE_SECONDS, and after that only what belongs to a meeting
session the room already has: a stored delivery naming it, or its meeting_sessions row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, exists, select

from workers.deliveries.parsing import END, LEAVE, DeliveryFacts
from workers.models import Delivery, MeetingSession


def closed_since(archived_at: datetime | None, grace_seconds: int) -> datetime | None:
    """Return when a room stops taking new meetings: its archiving plus the grace (None if not archived)."""
    return None if archived_at is None else archived_at + timedelta(seconds=grace_seconds)


def takes_delivery(connection: Connection, room_id: int, facts: DeliveryFacts, closed_at: datetime) -> bool:
    """Say whether a room closed to new meetings since `closed_at` still takes this delivery."""
    if facts.meeting_session_id is None:
        # Which meeting an unnamed delivery belongs to is decided only when it is folded. A leave or an end
        # can only close what is there; a join or a start after the cut-off can only open something new.
        return facts.event in (LEAVE, END) or facts.event_time < closed_at
    return has_meeting(connection, room_id, facts.meeting_session_id)


def has_meeting(connection: Connection, room_id: int, meeting_session_id: str) -> bool:
    """Say whether the room has this meeting session, folded or still in the inbox."""
    folded = select(MeetingSession.id).where(
        MeetingSession.meeting_session_id == meeting_session_id, MeetingSession.room_id == room_id
    )
    if connection.scalar(select(exists(folded))):
        return True
    # Not folded yet (workers behind): a delivery naming it was stored. Only archived rooms past their
    # grace ask this, so it is rare enough to go without an index of its own.
    stored = select(Delivery.id).where(
        Delivery.room_id == room_id, Delivery.meeting_session_ref == meeting_session_id
    )
    return bool(connection.scalar(select(exists(stored))))
