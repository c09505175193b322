"""Rebuild a meeting session from its stored raw deliveries, in bulk.

The incremental fold re-derives people one batch at a time; a rebuild knows every fact at once, so it
runs the pure compute_session over them and writes the rows with a few bulk INSERTs. Both paths must
agree, and tests hold them to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from workers import history
from workers.attendance import AttendanceRules, SegmentFacts, compute_session, merge_segment_facts, person_key
from workers.locks import lock_room_row
from workers.meetings import apply_session_fact, segment_facts_of
from workers.models import (
    AttendanceRow,
    Base,
    Delivery,
    DeliveryStatus,
    MeetingSession,
    ParticipantSession,
    SessionStatus,
)
from workers.payloads import parse_delivery
from workers.recompute import (
    SUMMARY_COLUMNS,
    ResultChange,
    attendance_values,
    clear_session,
    figures,
    person_summary,
    store_aggregates,
)

INSERT_CHUNK = 5000


def rebuild(db: Session, meeting: MeetingSession, job_id: str | None = None) -> ResultChange:
    """Recompute a session from its stored raw deliveries; the result matches the incremental fold."""
    lock_room_row(db, meeting.room_id)
    db.refresh(meeting)
    change = ResultChange(figures_before=figures(meeting))
    people_before = _people_snapshot(db, meeting)
    status, finalized_at, swept_at = meeting.status, meeting.finalized_at, meeting.end_received_at
    clear_session(db, meeting)
    meeting.status = SessionStatus.LIVE
    participants = _refold(db, meeting)
    # Lifecycle is not in the deliveries: a final session stays final, a swept one stays closed.
    if status == SessionStatus.FINAL:
        meeting.status, meeting.finalized_at = status, finalized_at
    elif meeting.closed_by_sweeper and meeting.status == SessionStatus.LIVE:
        meeting.status = SessionStatus.ENDED
    if meeting.end_received_at is None:
        meeting.end_received_at = swept_at
    if meeting.earliest_fact_at is not None:
        _write(db, meeting, participants)
    change.figures_after = figures(meeting)
    change.people = [p for p in _people_snapshot(db, meeting) if p not in people_before]
    history.record(db, meeting, "rebuild", change, job_id=job_id)
    return change


SESSION_FACTS = (
    "status",
    "earliest_fact_at",
    "last_delivery_at",
    "reported_start",
    "reported_end",
    "end_received_at",
)


def _refold(db: Session, meeting: MeetingSession) -> dict[str, SegmentFacts]:
    deliveries = db.execute(
        select(Delivery.event, Delivery.raw_body, Delivery.content_type, Delivery.received_at)
        .where(Delivery.session_id == meeting.id, Delivery.status != DeliveryStatus.FAILED)
        .order_by(Delivery.id)
        .execution_options(yield_per=5000)
    )
    # A plain copy of the session's facts: setting ORM attributes 100,000 times costs seconds.
    session_facts = SimpleNamespace(**{name: getattr(meeting, name) for name in SESSION_FACTS})
    participants: dict[str, SegmentFacts] = {}
    for event, raw_body, content_type, received_at in deliveries:
        facts = parse_delivery(event, raw_body.encode(), content_type, received_at)
        apply_session_fact(session_facts, facts, received_at)
        incoming = segment_facts_of(facts)
        if incoming is not None:
            known = participants.get(incoming.participant_session_id)
            participants[incoming.participant_session_id] = (
                incoming if known is None else merge_segment_facts(known, incoming)
            )
    for name in SESSION_FACTS:
        setattr(meeting, name, getattr(session_facts, name))
    return participants


def _write(db: Session, meeting: MeetingSession, participants: dict[str, SegmentFacts]) -> None:
    rules = AttendanceRules(meeting.reconnect_grace_seconds * 1000, meeting.min_attendance_percent)
    result = compute_session(
        meeting.reported_start,
        meeting.reported_end,
        participants.values(),
        rules,
        closed_by_sweeper=meeting.closed_by_sweeper,
        fallback_start=meeting.earliest_fact_at,
    )
    _insert_chunked(db, ParticipantSession, (_participant_values(meeting, f) for f in participants.values()))
    people = ({"session_id": meeting.id, **attendance_values(person)} for person in result.attendance)
    _insert_chunked(db, AttendanceRow, people)
    store_aggregates(meeting, result.bounds, result.participant_count, result.peak_concurrency)


def _insert_chunked(db: Session, model: type[Base], rows: Iterable[dict[str, Any]]) -> None:
    # Core executemany, a chunk at a time: the ORM's bulk path costs more, and one huge list costs memory.
    connection, table, pending = db.connection(), model.__table__, iter(rows)
    while chunk := list(islice(pending, INSERT_CHUNK)):
        connection.execute(insert(table), chunk)  # type: ignore[arg-type]


def _participant_values(meeting: MeetingSession, facts: SegmentFacts) -> dict[str, object]:
    identity = facts.identity
    return {
        "session_id": meeting.id,
        "participant_session_id": facts.participant_session_id,
        "joined_at": facts.joined_at,
        "left_at": facts.left_at,
        "external_user_id": identity.external_user_id,
        "email": identity.email,
        "name": identity.name,
        "participant_key": person_key(identity, facts.participant_session_id)[0],
    }


def _people_snapshot(db: Session, meeting: MeetingSession) -> list[dict[str, object]]:
    # Plain columns, not ORM rows: a big session has 10,000 of them, read twice per rebuild.
    columns = [getattr(AttendanceRow, name) for name in SUMMARY_COLUMNS]
    rows = db.execute(select(*columns).where(AttendanceRow.session_id == meeting.id))
    return [person_summary(*row) for row in rows]
