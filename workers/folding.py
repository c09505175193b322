"""Folding: stored deliveries in; meeting sessions, participant sessions and attendance out.

One path for every caller. A batch of deliveries (the worker's drain), all of a session's deliveries (a
rebuild) and the sessions a re-cut timeline regroups all end in `settle`: merge participant-session facts
into the session's stored ones, run the pure attendance.compute_session over the merged facts for the
people whose figures may have changed (everyone when the session's bounds moved), and write only the rows
that differ. Merges take the earliest join, the latest leave, and so on, so the stored state depends only
on the set of deliveries, never on their order, batching or duplicates.

The cost of a batch is its deliveries plus one read of the session's participant sessions (the bounds and
the peak need all of them), so a drain takes a backlog in few, large batches (FOLD_BATCH_SIZE).

A rebuild reads a session's deliveries through read_session (at the end of this module), which lets the
database merge most of them: the one faster second path, held to the fold's per-delivery merge by
tests/test_rebuild_facts.py, because a 100,000-delivery rebuild must take seconds (make bench).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Connection, Table, and_, case, delete, func, not_, or_, select
from sqlalchemy.orm import Session

from workers import inbox, results
from workers.attendance import (
    SESSION_FACT_NAMES,
    AttendanceRules,
    Identity,
    PersonAttendance,
    SegmentFacts,
    SessionFacts,
    SessionSummary,
    apply_session_fact,
    combine,
    compute_session,
    merge_identity,
    merge_into,
    merge_segment_facts,
    merge_summary,
    person_key,
    segment_facts_of,
    session_bounds,
    summary_of,
)
from workers.bulk_write import insert_rows, update_rows
from workers.deliveries.parsing import END, FACTS_VERSION, JOIN, LEAVE, PARTICIPANT_EVENTS, START, BodyError
from workers.deliveries.stored import FACT_COLUMNS, facts_of_row, read_facts
from workers.inbox import AMENDMENT
from workers.locks import lock_session_room
from workers.meetings import (
    FoldRules,
    ForeignSession,
    Mark,
    MeetingResolver,
    Move,
    has_unnamed,
    misplaced,
    regroup,
)
from workers.models import (
    Delivery,
    DeliveryStatus,
    MeetingSession,
    ParticipantSession,
    SessionStatus,
)
from workers.results import (
    ResultChange,
    figures,
    store_aggregates,
)

_PARTICIPANTS = cast(Table, ParticipantSession.__table__)


@dataclass
class FoldOutcome:
    """What a fold changed, for the caller to act on after commit."""

    finalize_due: dict[int, datetime] = field(default_factory=dict)
    amended_session_ids: set[int] = field(default_factory=set)
    folded: list[str] = field(default_factory=list)  # the event of each delivery folded
    failed: list[str] = field(default_factory=list)  # the event of each delivery that cannot be folded
    failed_ids: list[int] = field(default_factory=list)  # and its id, for its delivery.failed alert


@dataclass
class _Batch:
    """What one batch brings one meeting session."""

    meeting: MeetingSession
    was_final: bool
    summary: SessionSummary = field(default_factory=SessionSummary)
    delivery_ids: list[int] = field(default_factory=list)
    participants: dict[str, SegmentFacts] = field(default_factory=dict)


def fold_batch(
    db: Session,
    room_id: int,
    rows: Iterable[Sequence[Any]],
    rules: FoldRules,
    *,
    job_id: str | None = None,
) -> FoldOutcome:
    """Fold delivery rows (inbox.BATCH_COLUMNS) of one room and mark them processed; the caller commits."""
    resolver = MeetingResolver(db, room_id, rules)
    batches: dict[int, _Batch] = {}
    outcome = FoldOutcome()
    marks: list[Mark] = []
    moved: list[Move] = []  # replayed deliveries the fold put in another session than before
    for delivery_id, previous_session_id, *columns in rows:
        try:
            facts = facts_of_row(columns)
            meeting = resolver.session_for(facts)
        except (BodyError, ForeignSession) as error:
            # Its content, not the moment, is at fault: retrying cannot help, and it must not hold up
            # the room's other deliveries. It stays in the audit log, failed, with why; replay it once fixed.
            event = inbox.mark_failed(db, delivery_id, f"cannot be folded: {error}")
            if event is not None:
                outcome.failed.append(event)
                outcome.failed_ids.append(delivery_id)
            continue
        outcome.folded.append(facts.event)
        if previous_session_id is not None and previous_session_id != meeting.id:
            moved.append(Move(delivery_id, previous_session_id, meeting.meeting_session_id, done=True))
        if facts.event in (START, END):
            marks.append(Mark(facts.event, facts.event_time, facts.meeting_session_id))
        batch = batches.get(meeting.id)
        if batch is None:
            batch = batches[meeting.id] = _Batch(meeting, meeting.status == SessionStatus.FINAL)
        batch.delivery_ids.append(delivery_id)
        batch.summary = combine(batch.summary, summary_of(facts, columns[-1]))
        participant = segment_facts_of(facts)
        if participant is not None:
            merge_into(batch.participants, participant)
    for batch in batches.values():
        inbox.mark_processed(db, batch.meeting.id, batch.delivery_ids, AMENDMENT if batch.was_final else None)
    for batch in batches.values():
        merge_summary(batch.meeting, batch.summary)
        change = settle(db, batch.meeting, batch.participants)
        amended = batch.was_final and change.changed
        results.record(
            db,
            batch.meeting,
            "amendment" if amended else "deliveries",
            change,
            delivery_ids=batch.delivery_ids,
            job_id=job_id,
        )
        if amended:
            outcome.amended_session_ids.add(batch.meeting.id)
        _finalize_when_due(batch.meeting, rules, outcome)
    if marks and has_unnamed(db, room_id):
        moved += misplaced(db, resolver.timeline, marks)
    if moved:
        _regroup(db, resolver, moved, rules, outcome, job_id)
    return outcome


def _finalize_when_due(meeting: MeetingSession, rules: FoldRules, outcome: FoldOutcome) -> None:
    due = meeting.finalize_due(rules.finalize_after_seconds)
    if due is None:
        outcome.finalize_due.pop(meeting.id, None)
    else:
        outcome.finalize_due[meeting.id] = due


def _regroup(
    db: Session,
    resolver: MeetingResolver,
    moves: Sequence[Move],
    rules: FoldRules,
    outcome: FoldOutcome,
    job_id: str | None,
) -> None:
    db.flush()
    regrouped = regroup(db, resolver, moves)
    for session_id in regrouped.deleted_ids:
        outcome.finalize_due.pop(session_id, None)
        outcome.amended_session_ids.discard(session_id)
    for meeting in regrouped.changed:
        change = rebuild(db, meeting, job_id=job_id, cause="regroup")  # a rebuild keeps a final session final
        if meeting.status == SessionStatus.FINAL and change.changed:
            outcome.amended_session_ids.add(meeting.id)
        _finalize_when_due(meeting, rules, outcome)


class _Stored(NamedTuple):
    row_id: int
    facts: SegmentFacts
    person_key: str


def settle(
    db: Session, meeting: MeetingSession, incoming: dict[str, SegmentFacts], *, replace: bool = False
) -> ResultChange:
    """Merge participant-session facts into the session (replace: they are all it has); refresh its results.

    Only the people whose facts changed are computed again, unless the session's bounds moved, which
    changes everyone; only the rows that differ are written.
    """
    change = ResultChange(figures_before=figures(meeting))
    db.flush()  # the meeting row: the statements below read and write around the ORM
    connection = db.connection()
    stored = {} if replace else _stored_participants(connection, meeting.id)
    if replace:
        connection.execute(delete(ParticipantSession).where(ParticipantSession.session_id == meeting.id))
    merged = {psid: known.facts for psid, known in stored.items()}
    touched = _merge_participants(db, meeting.id, stored, incoming, merged)
    rules = AttendanceRules(meeting.reconnect_grace_seconds * 1000, meeting.min_attendance_percent)
    result = None
    if merged or meeting.reported_start or meeting.earliest_fact_at:
        bounds = session_bounds(
            meeting.reported_start,
            meeting.reported_end,
            merged.values(),
            closed_by_sweeper=meeting.closed_by_sweeper,
            fallback_start=meeting.earliest_fact_at,
        )
        # Bounds that moved change everyone's segments and percent; otherwise only the people touched.
        everyone = replace or (bounds.started_at, bounds.ended_at) != (meeting.started_at, meeting.ended_at)
        result = compute_session(
            meeting.reported_start,
            meeting.reported_end,
            merged.values(),
            rules,
            closed_by_sweeper=meeting.closed_by_sweeper,
            fallback_start=meeting.earliest_fact_at,
            people=None if everyone else touched,
        )
    else:
        everyone = True  # nothing left to derive anything from
    del merged, incoming  # computed from: a rebuild's facts need not outlive this
    if result is None:
        reset_figures(meeting)
        people: deque[PersonAttendance] = deque()
    else:
        store_aggregates(meeting, result.bounds, result.participant_count, result.peak_concurrency)
        # Handed over for the writer to consume: each person's result is freed once written, or a
        # rebuild would hold everyone's three times (stored row, result, history summary) at its peak.
        people = deque(result.attendance)
        del result
    before = results.stored_people(connection, meeting.id, None if everyone else touched)
    gone = set(before) - {person.participant_key for person in people}
    if not everyone:
        gone &= touched
    change.people = results.write_people(db, meeting.id, people, before, gone)
    change.figures_after = figures(meeting)
    return change


def _stored_participants(connection: Connection, session_id: int) -> dict[str, _Stored]:
    ps = ParticipantSession
    rows = connection.execute(
        select(
            ps.id,
            ps.participant_session_id,
            ps.joined_at,
            ps.left_at,
            ps.external_user_id,
            ps.email,
            ps.name,
            ps.is_admin,
            ps.participant_key,
        ).where(ps.session_id == session_id)
    )
    return {
        psid: _Stored(row_id, SegmentFacts(psid, joined, left, Identity(ext, email, name), is_admin), key)
        for row_id, psid, joined, left, ext, email, name, is_admin, key in rows
    }


def _merge_participants(
    db: Session,
    session_id: int,
    stored: dict[str, _Stored],
    incoming: dict[str, SegmentFacts],
    merged: dict[str, SegmentFacts],
) -> set[str]:
    # Writes the participant sessions `incoming` changes, updates `merged`; returns the person keys touched.
    touched: set[str] = set()
    updates: list[dict[str, Any]] = []

    def new_rows() -> Iterator[dict[str, Any]]:
        # Streamed into the insert: a rebuild's rows are not all held twice.
        for psid, facts in incoming.items():
            known = stored.get(psid)
            if known is not None:
                facts = merge_segment_facts(known.facts, facts)
                if facts == known.facts:
                    continue
                touched.add(known.person_key)
            key = person_key(facts.identity, psid)[0]
            touched.add(key)
            merged[psid] = facts
            values = participant_values(facts, key)
            if known is None:
                yield {"session_id": session_id, **values}
            else:
                updates.append({"id": known.row_id, **values})

    insert_rows(db, _PARTICIPANTS, new_rows())
    update_rows(db, _PARTICIPANTS, updates)
    return touched


def participant_values(facts: SegmentFacts, key: str) -> dict[str, Any]:
    """Return a participant session's row columns (all but its session) for its facts and person key."""
    identity = facts.identity
    return {
        "participant_session_id": facts.participant_session_id,
        "joined_at": facts.joined_at,
        "left_at": facts.left_at,
        "external_user_id": identity.external_user_id,
        "email": identity.email,
        "name": identity.name,
        "is_admin": facts.is_admin,
        "participant_key": key,
    }


def rebuild(
    db: Session, meeting: MeetingSession, job_id: str | None = None, cause: str = "rebuild"
) -> ResultChange:
    """Fold a session again from its stored deliveries, as if each were folded for the first time."""
    with _collector_paused():
        # Every writer of a room's sessions takes the room's row lock; inside a fold (a regroup) it is
        # held already, and taking it again costs one query.
        lock_session_room(db, meeting)
        before = figures(meeting)
        # Passed straight on, not kept here: settle lets go of the facts once it has computed from them.
        change = settle(db, meeting, _read_again(db, meeting), replace=True)
        change.figures_before = before
        results.record(db, meeting, cause, change, job_id=job_id)
        return change


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


def _read_again(db: Session, meeting: MeetingSession) -> dict[str, SegmentFacts]:
    # What the session's deliveries say, read as if for the first time, into the session and returned.
    status, finalized_at, swept_at = meeting.status, meeting.finalized_at, meeting.end_received_at
    forget_facts(meeting)
    meeting.status = SessionStatus.LIVE
    participants = _read_deliveries(db, meeting)
    # Lifecycle is not in the deliveries: a final session stays final, a swept one stays closed.
    if status == SessionStatus.FINAL:
        meeting.status, meeting.finalized_at = status, finalized_at
    elif meeting.closed_by_sweeper and meeting.status == SessionStatus.LIVE:
        meeting.status = SessionStatus.ENDED
    if meeting.end_received_at is None and meeting.closed_by_sweeper:
        meeting.end_received_at = swept_at  # the sweeper's close, which no delivery records
    return participants


def _read_deliveries(db: Session, meeting: MeetingSession) -> dict[str, SegmentFacts]:
    # A plain copy of the session's facts: setting ORM attributes 100,000 times costs seconds.
    session_facts = SimpleNamespace(**{name: getattr(meeting, name) for name in SESSION_FACT_NAMES})
    # On the Core connection: through the Session, every row would also pass the ORM's loading machinery.
    participants = read_session(db.connection(), meeting.id, session_facts)
    for name in SESSION_FACT_NAMES:
        setattr(meeting, name, getattr(session_facts, name))
    return participants


def forget_facts(meeting: MeetingSession) -> None:
    """Forget what a session's deliveries said (SessionSummary's fields), ready to read them again."""
    for name in SessionSummary._fields:
        setattr(meeting, name, None)


def reset_figures(meeting: MeetingSession) -> None:
    """Forget the figures derived for a session that has no facts left."""
    meeting.started_at = meeting.ended_at = meeting.duration_ms = None
    meeting.participant_count = meeting.peak_concurrency = 0


def refresh(db: Session, meeting: MeetingSession) -> ResultChange:
    """Compute a session's results again after its own facts changed (the sweeper closed it, say)."""
    return settle(db, meeting, {})


# Reading a session's deliveries for a rebuild: the database merges what it can, Python the rest.
#
# A rebuild needs one merged SegmentFacts per participant session, and the session's own facts. Most of a
# session's deliveries are joins and leaves whose fact columns this parser filled: the database groups those
# by participant session (earliest join, latest leave, each identity field's least and greatest value) and
# Python sees one row per participant session instead of one per delivery. The rest goes through the fold's
# own per-delivery merge: starts and ends, joins and leaves with no participant session id, rows stamped by
# another parser version, and the rare participant session whose identity the grouped row cannot settle.
# The session's facts of the grouped rows come from one aggregate; merging is idempotent, so a delivery read
# both ways (a disputed one) counts once. Tests hold the result to the per-delivery merge of every delivery.


_IDENTITY = (Delivery.external_user_id, Delivery.email, Delivery.name)


def read_session(connection: Connection, session_id: int, into: SessionFacts) -> dict[str, SegmentFacts]:
    """Merge the session's deliveries' session facts into `into`; return its participant sessions' facts."""
    # Several statements, each its own snapshot under READ COMMITTED. They agree because the caller holds
    # the room's lock, and only a holder of it gives a delivery its session or fails it. (A replay may
    # un-fail one meanwhile; it is then folded again, under the lock, and merging is idempotent.)
    live = and_(Delivery.session_id == session_id, Delivery.status != DeliveryStatus.FAILED)
    grouped = and_(
        live,
        Delivery.facts_version == FACTS_VERSION,
        Delivery.event.in_(PARTICIPANT_EVENTS),
        Delivery.participant_session_id.is_not(None) & (Delivery.participant_session_id != ""),
    )
    # not_(grouped) below must be exactly its complement: no part of `grouped` may be NULL for any row.
    # status, facts_version and event are NOT NULL columns; the participant session id is tested for NULL.
    # A query of its own: measured faster than two more aggregates in the GROUP BY below (0.40 against
    # 0.44 s for 100,000 deliveries on SQLite), whose 100,000 extra timestamps Python would convert.
    first_fact, last_received = connection.execute(
        select(func.min(Delivery.event_time), func.max(Delivery.received_at)).where(grouped)
    ).one()
    merge_summary(into, SessionSummary(earliest_fact_at=first_fact, last_delivery_at=last_received))
    participants, any_disputed = _grouped_participants(connection, grouped)
    if any_disputed:
        _merge_rows(
            connection.execute(select(*FACT_COLUMNS).where(grouped, _disputed(grouped))), into, participants
        )
    rest = select(*FACT_COLUMNS).where(live, not_(grouped)).execution_options(yield_per=5000)
    _merge_rows(connection.execute(rest), into, participants)
    return participants


def _grouped_participants(
    connection: Connection, grouped: ColumnElement[bool]
) -> tuple[dict[str, SegmentFacts], bool]:
    # Returns the participant sessions whose identity the grouped row settles, and whether any was not.
    query = (
        select(
            Delivery.participant_session_id,
            func.min(case((Delivery.event == JOIN, Delivery.event_time), else_=Delivery.join_time)),
            func.max(case((Delivery.event == LEAVE, Delivery.event_time))),
            # isAdmin merges as the greatest of None < False < True: a MAX over 0 and 1, NULL ignored
            # (PostgreSQL has no MAX of booleans, SQLite no booleans at all).
            func.max(case((Delivery.is_admin.is_(True), 1), (Delivery.is_admin.is_(False), 0))),
            func.count(),
            *(bound(column) for column in _IDENTITY for bound in (func.min, func.max)),
        )
        .where(grouped)
        .group_by(Delivery.participant_session_id)
        .execution_options(yield_per=5000)
    )
    participants: dict[str, SegmentFacts] = {}
    any_disputed = False
    for psid, joined_at, left_at, admin, deliveries, *bounds in connection.execute(query):
        identity = _settled_identity(deliveries, bounds)
        if identity is None:
            any_disputed = True
        else:
            is_admin = None if admin is None else admin == 1
            participants[psid] = SegmentFacts(psid, joined_at, left_at, identity, is_admin)
    return participants, any_disputed


def _settled_identity(deliveries: int, bounds: Sequence[Any]) -> Identity | None:
    # `bounds` holds each identity field's least and greatest value; NULLs count for nothing in either, as
    # None counts for nothing when identities merge. From one or two deliveries (a join and its leave, the
    # usual case) those are every value the field took, so merging them is merging the deliveries: Python's
    # rule picks, blanks and all. From more, a value in between could be the one it picks, unless all agree.
    # (This needs a collation in which equal means identical, as the database defaults are.)
    least, greatest = Identity(*bounds[0::2]), Identity(*bounds[1::2])
    if deliveries <= 2 or least == greatest:
        return merge_identity(least, greatest)
    return None


def _disputed(grouped: ColumnElement[bool]) -> ColumnElement[bool]:
    # The participant sessions _settled_identity gives up on, chosen in one query (not one IN list each).
    unsettled = (
        select(Delivery.participant_session_id)
        .where(grouped)
        .group_by(Delivery.participant_session_id)
        .having(func.count() > 2, or_(*(func.min(column) != func.max(column) for column in _IDENTITY)))
    )
    return Delivery.participant_session_id.in_(unsettled)


def _merge_rows(
    rows: Iterable[Sequence[Any]], into: SessionFacts, participants: dict[str, SegmentFacts]
) -> None:
    # The incremental fold's per-delivery merge (folding.apply_deliveries), on plain rows.
    for facts, received_at in read_facts(rows):
        apply_session_fact(into, facts, received_at)
        incoming = segment_facts_of(facts)
        if incoming is not None:
            merge_into(participants, incoming)
