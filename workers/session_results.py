"""A session's results as stored: the attendance row of a person, the session's own figures, and the
summaries its history records of both.

The one mapping from the attendance maths' results to the tables: the incremental recompute and the bulk
rebuild both write through it, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.attendance import PersonAttendance, Segment, SessionBounds
from workers.models import AttendanceRow, MeetingSession
from workers.timefmt import iso_ms


@dataclass
class ResultChange:
    """How a recompute changed a session's results."""

    figures_before: dict[str, Any]
    figures_after: dict[str, Any] = field(default_factory=dict)
    people: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Say whether anything a report shows is different."""
        return bool(self.people) or self.figures_before != self.figures_after


def figures(meeting: MeetingSession) -> dict[str, Any]:
    """Return the session's own figures as the history records them."""
    return {
        "status": str(meeting.status),
        "startedAt": None if meeting.started_at is None else iso_ms(meeting.started_at),
        "endedAt": None if meeting.ended_at is None else iso_ms(meeting.ended_at),
        "durationSeconds": None if meeting.duration_ms is None else meeting.duration_ms / 1000,
        "participantCount": meeting.participant_count,
        "peakConcurrency": meeting.peak_concurrency,
        "inferred": meeting.inferred,
    }


def row_summary(row: AttendanceRow) -> dict[str, Any]:
    """Return a stored attendance row as the session's history records it."""
    return person_summary(*(getattr(row, column) for column in SUMMARY_COLUMNS))


SUMMARY_COLUMNS = (
    "participant_key",
    "attended_ms",
    "attendance_percent",
    "join_count",
    "present",
    "segments",
)


def removed(key: str) -> dict[str, Any]:
    """Return how the session's history records a person no longer in its results."""
    return {"participantKey": key, "removed": True}


def person_summary(
    key: str, attended_ms: int, percent: float | None, joins: int, present: bool | None, segments: Any
) -> dict[str, Any]:
    """Return one person's results as the session's history records them (SUMMARY_COLUMNS, in order)."""
    return {
        "participantKey": key,
        "attendedSeconds": attended_ms / 1000,
        "attendancePercent": percent,
        "joinCount": joins,
        "present": present,
        "segments": segments,
    }


def store_person(row: AttendanceRow, result: PersonAttendance) -> None:
    """Write one person's result into their attendance row."""
    for name, value in attendance_values(result).items():
        setattr(row, name, value)


def attendance_values(result: PersonAttendance) -> dict[str, Any]:
    """Return the attendance row's columns for one person's result."""
    return {
        "participant_key": result.participant_key,
        "identified_by": result.identified_by,
        "name": result.name,
        "email": result.email,
        "external_user_id": result.external_user_id,
        "first_join_at": result.first_join_at,
        "last_left_at": result.last_left_at,
        "attended_ms": round(result.attended_seconds * 1000),
        "attendance_percent": result.attendance_percent,
        "join_count": result.join_count,
        "present": result.present,
        "inferred": result.inferred,
        "segments": [segment_record(segment) for segment in result.segments],
    }


def segment_record(segment: Segment) -> dict[str, object]:
    """Return a segment as stored in the attendance row (ISO times, as the API shows them)."""
    return {
        "participantSessionId": segment.participant_session_id,
        "joinedAt": iso_ms(segment.joined_at),
        "leftAt": None if segment.left_at is None else iso_ms(segment.left_at),
        "inferred": segment.inferred,
    }


def store_aggregates(
    meeting: MeetingSession, bounds: SessionBounds, participant_count: int, peak: int
) -> None:
    """Write the session's own figures."""
    meeting.started_at, meeting.ended_at = bounds.started_at, bounds.ended_at
    meeting.duration_ms = (
        None
        if bounds.ended_at is None
        else round((bounds.ended_at - bounds.started_at).total_seconds() * 1000)
    )
    meeting.inferred = bounds.start_inferred or bounds.end_inferred
    meeting.participant_count = participant_count
    meeting.peak_concurrency = peak
