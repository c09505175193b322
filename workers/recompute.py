"""Re-derive a meeting session's figures and its people's attendance from the stored facts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from workers.attendance import AttendanceRules, peak_concurrency, person_attendance
from workers.meetings import IN_CHUNK, stored_facts
from workers.models import AttendanceRow, MeetingSession, ParticipantSession
from workers.participant_facts import SegmentFacts, person_key
from workers.segments import Segment, SessionBounds, resolve_segment, session_bounds
from workers.session_facts import SessionSummary
from workers.session_results import (
    ResultChange,
    figures,
    removed,
    row_summary,
    store_aggregates,
    store_person,
)


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
        return removed(key)
    facts = [stored_facts(row) for row in rows]
    identified_by = person_key(facts[0].identity, facts[0].participant_session_id)[1]
    segments = [resolve_segment(fact, bounds) for fact in facts]
    result, _ = person_attendance(key, identified_by, segments, [f.identity for f in facts], bounds, rules)
    before = None if existing is None else row_summary(existing)
    if existing is None:
        existing = AttendanceRow(session_id=meeting.id, participant_key=key)
        db.add(existing)
    store_person(existing, result)
    after = row_summary(existing)
    return None if after == before else after


def _refresh_aggregates(db: Session, meeting: MeetingSession, bounds: SessionBounds) -> None:
    participant_count = db.scalar(
        select(func.count()).select_from(AttendanceRow).where(AttendanceRow.session_id == meeting.id)
    )
    peak = peak_concurrency(_segments_by_person(db, meeting, bounds))
    store_aggregates(meeting, bounds, participant_count or 0, peak)


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
    # What its deliveries said (SessionSummary's fields), and the figures derived from that.
    for name in (*SessionSummary._fields, "started_at", "ended_at", "duration_ms"):
        setattr(meeting, name, None)
    meeting.participant_count = meeting.peak_concurrency = 0
