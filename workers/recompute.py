"""Re-derive a meeting session's figures and its people's attendance from the stored facts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from workers.attendance import (
    AttendanceRules,
    PersonAttendance,
    Segment,
    SessionBounds,
    peak_concurrency,
    person_attendance,
    resolve_segment,
    session_bounds,
)
from workers.meetings import IN_CHUNK, stored_facts
from workers.models import AttendanceRow, MeetingSession, ParticipantSession
from workers.participant_facts import SegmentFacts, person_key
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


def recompute_session(db: Session, meeting: MeetingSession, person_keys: Iterable[str] = ()) -> ResultChange:
    """Refresh the people in `person_keys` (everyone, if the session's bounds moved) and the aggregates."""
    change = ResultChange(figures_before=figures(meeting))
    db.flush()
    bounds = current_bounds(db, meeting)
    keys = set(person_keys)
    # Bounds that moved change everyone's segments and percent; otherwise only the people touched.
    everyone = (bounds.started_at, bounds.ended_at) != (meeting.started_at, meeting.ended_at)
    if everyone:
        keys |= set(
            db.scalars(select(AttendanceRow.participant_key).where(AttendanceRow.session_id == meeting.id))
        )
        keys |= set(_people(db, meeting))
    rules = AttendanceRules(meeting.reconnect_grace_seconds * 1000, meeting.min_attendance_percent)
    segments_of = _segments_by_key(db, meeting, keys, everyone)
    attendance_of = {row.participant_key: row for row in _rows(db, AttendanceRow, meeting, keys, everyone)}
    for key in sorted(keys):
        person_change = _refresh_person(
            db, meeting, key, segments_of.get(key, []), attendance_of.get(key), bounds, rules
        )
        if person_change:
            change.people.append(person_change)
    db.flush()
    _refresh_aggregates(db, meeting, bounds)
    change.figures_after = figures(meeting)
    return change


def current_bounds(db: Session, meeting: MeetingSession) -> SessionBounds:
    """Return the session's bounds from its reported times and the extremes of its participants' times."""
    ps = ParticipantSession
    first_join, last_join, last_leave = db.execute(
        select(func.min(ps.joined_at), func.max(ps.joined_at), func.max(ps.left_at)).where(
            ps.session_id == meeting.id
        )
    ).one()
    extremes = [SegmentFacts("first", joined_at=first_join), SegmentFacts("last", last_join, last_leave)]
    return session_bounds(
        meeting.reported_start,
        meeting.reported_end,
        extremes,
        closed_by_sweeper=meeting.closed_by_sweeper,
        fallback_start=meeting.earliest_fact_at,
    )


def _people(db: Session, meeting: MeetingSession) -> set[str]:
    query = select(ParticipantSession.participant_key).where(ParticipantSession.session_id == meeting.id)
    return set(db.scalars(query.distinct()))


Row = TypeVar("Row", ParticipantSession, AttendanceRow)


def _rows(
    db: Session, model: type[Row], meeting: MeetingSession, keys: set[str], everyone: bool
) -> list[Row]:
    query = select(model).where(model.session_id == meeting.id)
    if everyone:
        return list(db.scalars(query))
    ordered = sorted(keys)
    found: list[Row] = []
    for start in range(0, len(ordered), IN_CHUNK):
        found.extend(db.scalars(query.where(model.participant_key.in_(ordered[start : start + IN_CHUNK]))))
    return found


def _segments_by_key(
    db: Session, meeting: MeetingSession, keys: set[str], everyone: bool
) -> dict[str, list[ParticipantSession]]:
    grouped: defaultdict[str, list[ParticipantSession]] = defaultdict(list)
    for row in _rows(db, ParticipantSession, meeting, keys, everyone):
        grouped[row.participant_key].append(row)
    return grouped


def _refresh_person(
    db: Session,
    meeting: MeetingSession,
    key: str,
    rows: list[ParticipantSession],
    existing: AttendanceRow | None,
    bounds: SessionBounds,
    rules: AttendanceRules,
) -> dict[str, Any] | None:
    if not rows:
        if existing is None:
            return None
        db.delete(existing)
        return {"participantKey": key, "removed": True}
    facts = [stored_facts(row) for row in rows]
    identified_by = person_key(facts[0].identity, facts[0].participant_session_id)[1]
    segments = [resolve_segment(fact, bounds) for fact in facts]
    result = person_attendance(key, identified_by, segments, [f.identity for f in facts], bounds, rules)
    before = None if existing is None else _summary(existing)
    if existing is None:
        existing = AttendanceRow(session_id=meeting.id, participant_key=key)
        db.add(existing)
    _store(existing, result)
    after = _summary(existing)
    return None if after == before else after


def _summary(row: AttendanceRow) -> dict[str, Any]:
    return person_summary(*(getattr(row, column) for column in SUMMARY_COLUMNS))


SUMMARY_COLUMNS = (
    "participant_key",
    "attended_ms",
    "attendance_percent",
    "join_count",
    "present",
    "segments",
)


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


def _store(row: AttendanceRow, result: PersonAttendance) -> None:
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


def _refresh_aggregates(db: Session, meeting: MeetingSession, bounds: SessionBounds) -> None:
    participant_count = db.scalar(
        select(func.count()).select_from(AttendanceRow).where(AttendanceRow.session_id == meeting.id)
    )
    peak = peak_concurrency(_segments_by_person(db, meeting, bounds))
    store_aggregates(meeting, bounds, participant_count or 0, peak)


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


def _segments_by_person(
    db: Session, meeting: MeetingSession, bounds: SessionBounds
) -> dict[str, list[Segment]]:
    ps = ParticipantSession
    rows = db.execute(
        select(ps.participant_key, ps.participant_session_id, ps.joined_at, ps.left_at).where(
            ps.session_id == meeting.id
        )
    )
    people: defaultdict[str, list[Segment]] = defaultdict(list)
    for key, psid, joined_at, left_at in rows:
        people[key].append(resolve_segment(SegmentFacts(psid, joined_at, left_at), bounds))
    return people


def clear_session(db: Session, meeting: MeetingSession) -> None:
    """Forget everything derived for a session, ready to fold its deliveries again."""
    db.execute(delete(AttendanceRow).where(AttendanceRow.session_id == meeting.id))
    db.execute(delete(ParticipantSession).where(ParticipantSession.session_id == meeting.id))
    for name in (
        "reported_start",
        "reported_end",
        "end_received_at",
        "earliest_fact_at",
        "last_delivery_at",
        "started_at",
        "ended_at",
        "duration_ms",
    ):
        setattr(meeting, name, None)
    meeting.participant_count = meeting.peak_concurrency = 0
