"""Results: a session's attendance rows and figures as stored, and the append-only trail of their changes.

The one mapping from the attendance maths' results to the tables, and the one writer of attendance rows:
every fold, rebuild and regroup writes through it, so they cannot drift apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, Table, delete, select
from sqlalchemy.orm import Session

from workers.attendance import PersonAttendance, Segment, SessionBounds
from workers.bulk_write import insert_rows, update_rows
from workers.inbox import IN_CHUNK
from workers.models import AttendanceRow, MeetingSession, SessionChange
from workers.timefmt import iso_ms

_ATTENDANCE = cast(Table, AttendanceRow.__table__)


@dataclass
class ResultChange:
    """How a fold, rebuild or lifecycle step changed a session's results."""

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


SUMMARY_COLUMNS = (
    "participant_key",
    "attended_ms",
    "attendance_percent",
    "join_count",
    "present",
    "segments",
    "is_host",
)


def removed(key: str) -> dict[str, Any]:
    """Return how the session's history records a person no longer in its results."""
    return {"participantKey": key, "removed": True}


def person_summary(
    key: str,
    attended_ms: int,
    percent: float | None,
    joins: int,
    present: bool | None,
    segments: Any,
    is_host: bool,
) -> dict[str, Any]:
    """Return one person's results as the session's history records them (SUMMARY_COLUMNS, in order)."""
    return {
        "participantKey": key,
        "attendedSeconds": attended_ms / 1000,
        "attendancePercent": percent,
        "joinCount": joins,
        "present": present,
        "segments": segments,
        "host": is_host,
    }


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
        "is_host": result.is_host,
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


# What attendance_values fills: every column but the row's own id and its session.
_ATTENDANCE_COLUMNS = tuple(c.name for c in _ATTENDANCE.columns if c.name not in ("id", "session_id"))


def stored_people(connection: Connection, session_id: int, keys: set[str] | None) -> dict[str, RowMapping]:
    """Return each person's attendance row as column values, with its id: everyone's, or those of `keys`."""
    columns = [_ATTENDANCE.c.id, *(_ATTENDANCE.c[name] for name in _ATTENDANCE_COLUMNS)]
    query = select(*columns).where(_ATTENDANCE.c.session_id == session_id)
    if keys is None:
        chunks: Iterator[Any] = iter([query])
    else:
        ordered = sorted(keys)
        chunks = (
            query.where(_ATTENDANCE.c.participant_key.in_(ordered[start : start + IN_CHUNK]))
            for start in range(0, len(ordered), IN_CHUNK)
        )
    # Row mappings, not dicts: a rebuild holds everyone's, and a dict per row costs a sixth of its memory.
    return {row.participant_key: row._mapping for chunk in chunks for row in connection.execute(chunk)}


def write_people(
    db: Session,
    session_id: int,
    people: deque[PersonAttendance],
    before: dict[str, RowMapping],
    gone: set[str],
) -> list[dict[str, Any]]:
    """Write `people`'s attendance rows and delete those of `gone`, touching only rows that differ.

    The one writer of attendance rows; return each person whose figures changed, as history records them.
    It consumes `people` and `before` as it goes, so what it has written is freed.
    """
    updates: list[dict[str, Any]] = []
    changed: dict[str, dict[str, Any]] = {}
    gone_ids = sorted(before[key]["id"] for key in gone)

    def new_rows() -> Iterator[dict[str, Any]]:
        # Streamed into the insert, not listed first: a rebuild's 10,000 rows would all be held twice.
        while people:
            person = people.popleft()
            values = attendance_values(person)
            key = person.participant_key
            known = before.pop(key, None)
            if known is None:
                changed[key] = _summary(values)
                yield {"session_id": session_id, **values}
            elif any(known[name] != value for name, value in values.items()):
                updates.append({"id": known["id"], **values})
                if (summary := _summary(values)) != _summary(known):
                    changed[key] = summary

    insert_rows(db, _ATTENDANCE, new_rows())
    update_rows(db, _ATTENDANCE, updates)
    for start in range(0, len(gone_ids), IN_CHUNK):
        db.execute(delete(AttendanceRow).where(AttendanceRow.id.in_(gone_ids[start : start + IN_CHUNK])))
    changed.update((key, removed(key)) for key in gone)
    return [changed[key] for key in sorted(changed)]


def _summary(values: Mapping[Any, Any]) -> dict[str, Any]:
    # An attendance row's values (stored or about to be) as the history records them.
    return person_summary(*(values[column] for column in SUMMARY_COLUMNS))


def record(
    db: Session,
    meeting: MeetingSession,
    cause: str,
    change: ResultChange,
    *,
    delivery_ids: Sequence[int] = (),
    job_id: str | None = None,
) -> SessionChange | None:
    """Append the change to the session's trail, unless nothing a report shows changed."""
    if not change.changed:
        return None
    entry = SessionChange(
        session_id=meeting.id,
        cause=cause,
        delivery_ids=sorted(delivery_ids),
        job_id=job_id,
        figures=change.figures_after,
        people=change.people,
    )
    db.add(entry)
    return entry
