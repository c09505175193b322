"""Rebuild a meeting session from its stored deliveries, in bulk.

The incremental fold re-derives people one batch at a time; a rebuild knows every fact at once, so it
runs the pure compute_session over them and writes the rows in bulk (COPY on PostgreSQL). It reads the
facts through rebuild_facts: from the columns the receiver filled (most joins and leaves grouped by the
database), the raw body only for rows an older parser stored. Fold and rebuild must agree, and tests hold
them to it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from workers import history
from workers.attendance import AttendanceRules, compute_session
from workers.bulk_insert import insert_rows
from workers.locks import lock_session_room
from workers.meetings import participant_values
from workers.models import (
    AttendanceRow,
    MeetingSession,
    ParticipantSession,
    SessionStatus,
)
from workers.participant_facts import SegmentFacts
from workers.rebuild_facts import read_session
from workers.recompute import clear_session
from workers.session_facts import SESSION_FACT_NAMES
from workers.session_results import (
    SUMMARY_COLUMNS,
    ResultChange,
    attendance_values,
    figures,
    person_summary,
    removed,
    store_aggregates,
)

_PARTICIPANTS = cast(Table, ParticipantSession.__table__)
_ATTENDANCE = cast(Table, AttendanceRow.__table__)


def rebuild(
    db: Session, meeting: MeetingSession, job_id: str | None = None, cause: str = "rebuild"
) -> ResultChange:
    """Recompute a session from its stored deliveries; the result matches the incremental fold."""
    with _collector_paused():
        return _rebuild(db, meeting, job_id, cause)


@contextmanager
def _collector_paused() -> Iterator[None]:
    # A big rebuild makes and keeps hundreds of thousands of small objects, none in a cycle: the cyclic
    # collector would walk them again and again for nothing to free (5-20% of the time, measured).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rebuild(db: Session, meeting: MeetingSession, job_id: str | None, cause: str) -> ResultChange:
    # Every writer of a room's sessions takes the room's row lock; inside a fold (a regroup) it is held
    # already, and taking it again costs one query.
    lock_session_room(db, meeting)
    change = ResultChange(figures_before=figures(meeting))
    # By person key (unique in a session): a list would make the comparison below quadratic.
    people_before = {str(person["participantKey"]): person for person in _people_snapshot(db, meeting)}
    status, finalized_at, swept_at = meeting.status, meeting.finalized_at, meeting.end_received_at
    clear_session(db, meeting)
    meeting.status = SessionStatus.LIVE
    participants = _refold(db, meeting)
    # Lifecycle is not in the deliveries: a final session stays final, a swept one stays closed.
    if status == SessionStatus.FINAL:
        meeting.status, meeting.finalized_at = status, finalized_at
    elif meeting.closed_by_sweeper and meeting.status == SessionStatus.LIVE:
        meeting.status = SessionStatus.ENDED
    if meeting.end_received_at is None and meeting.closed_by_sweeper:
        meeting.end_received_at = swept_at  # the sweeper's close, which no delivery records
    if meeting.earliest_fact_at is not None:
        _write(db, meeting, participants)
    del participants  # written: free them before the snapshot below, or both count in the peak memory
    change.figures_after = figures(meeting)
    people_after = {str(person["participantKey"]): person for person in _people_snapshot(db, meeting)}
    change.people = [person for key, person in people_after.items() if people_before.get(key) != person]
    # Someone a rebuild no longer finds (their deliveries went to another session) is recorded as recompute
    # records it: removed.
    change.people += [removed(key) for key in sorted(people_before.keys() - people_after.keys())]
    history.record(db, meeting, cause, change, job_id=job_id)
    return change


def _refold(db: Session, meeting: MeetingSession) -> dict[str, SegmentFacts]:
    # A plain copy of the session's facts: setting ORM attributes 100,000 times costs seconds.
    session_facts = SimpleNamespace(**{name: getattr(meeting, name) for name in SESSION_FACT_NAMES})
    # On the Core connection: through the Session, every row would also pass the ORM's loading machinery.
    participants = read_session(db.connection(), meeting.id, session_facts)
    for name in SESSION_FACT_NAMES:
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
    # The person compute_session put each participant session with: no second person_key for each.
    key_of = {s.participant_session_id: p.participant_key for p in result.attendance for s in p.segments}
    participant_rows = (
        {"session_id": meeting.id, **participant_values(facts, key_of[psid])}
        for psid, facts in participants.items()
    )
    insert_rows(db, _PARTICIPANTS, participant_rows)
    people = ({"session_id": meeting.id, **attendance_values(person)} for person in result.attendance)
    insert_rows(db, _ATTENDANCE, people)
    store_aggregates(meeting, result.bounds, result.participant_count, result.peak_concurrency)


def _people_snapshot(db: Session, meeting: MeetingSession) -> list[dict[str, object]]:
    # Plain columns, not ORM rows: a big session has 10,000 of them, read twice per rebuild.
    columns = [getattr(AttendanceRow, name) for name in SUMMARY_COLUMNS]
    rows = db.execute(select(*columns).where(AttendanceRow.session_id == meeting.id))
    return [person_summary(*row) for row in rows]
