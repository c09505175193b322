"""What deliveries say about their meeting session itself: its times, its start and its end, merged.

Pure. One delivery's facts and a database's aggregate over many deliveries are both a SessionSummary, and
merging is commutative, associative and idempotent, so the session's facts depend only on the set of
deliveries, however they are read.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from workers.deliveries.parsing import END, START, DeliveryFacts
from workers.models import SessionStatus
from workers.participant_facts import earliest, latest


class SessionFacts(Protocol):
    """What deliveries report about a meeting session itself (a MeetingSession, or a scratch copy)."""

    status: str
    earliest_fact_at: datetime | None
    last_delivery_at: datetime | None
    reported_start: datetime | None
    reported_end: datetime | None
    end_received_at: datetime | None


class SessionSummary(NamedTuple):
    """What some deliveries say about their session; None where none of them says anything."""

    earliest_fact_at: datetime | None = None  # the earliest event time of any delivery
    last_delivery_at: datetime | None = None  # the latest time one was received
    reported_start: datetime | None = None  # the earliest start reported
    reported_end: datetime | None = None  # the latest end reported
    end_received_at: datetime | None = None  # when the first end was received: set for every end


SESSION_FACT_NAMES = ("status", *SessionSummary._fields)  # what a SessionFacts holds


def summary_of(facts: DeliveryFacts, received_at: datetime) -> SessionSummary:
    """Return what one delivery says about its session."""
    is_end = facts.event == END
    return SessionSummary(
        earliest_fact_at=facts.event_time,
        last_delivery_at=received_at,
        reported_start=facts.event_time if facts.event == START else None,
        reported_end=facts.event_time if is_end else None,
        end_received_at=received_at if is_end else None,
    )


def merge_summary(meeting: SessionFacts, summary: SessionSummary) -> None:
    """Merge what some deliveries say about a session into it; an end ends a live session.

    An end is known by its end_received_at: every delivery has a received time, so every end sets it.
    """
    meeting.earliest_fact_at = earliest(meeting.earliest_fact_at, summary.earliest_fact_at)
    meeting.last_delivery_at = latest(meeting.last_delivery_at, summary.last_delivery_at)
    meeting.reported_start = earliest(meeting.reported_start, summary.reported_start)
    meeting.reported_end = latest(meeting.reported_end, summary.reported_end)
    meeting.end_received_at = earliest(meeting.end_received_at, summary.end_received_at)
    if summary.end_received_at is not None and meeting.status == SessionStatus.LIVE:
        meeting.status = SessionStatus.ENDED


def apply_session_fact(meeting: SessionFacts, facts: DeliveryFacts, received_at: datetime) -> None:
    """Merge what one delivery says about its meeting session (times, start, end) into the session."""
    merge_summary(meeting, summary_of(facts, received_at))
