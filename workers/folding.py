"""Fold stored deliveries into meeting sessions and attendance: the imperative shell around the maths.

Each delivery becomes a fact merged into its meeting session (start/end times) or participant session
(join/leave times, identity). Merges take the earliest join, the latest leave, and so on, so the stored
state depends only on the set of deliveries. Then only the people a batch touched are re-derived, unless
the session's bounds moved, which changes everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from workers import history
from workers.deliveries.parsing import END, START, BodyError
from workers.deliveries.stored import facts_of
from workers.meetings import FoldRules, ForeignSession, MeetingResolver, merge_participants, segment_facts_of
from workers.models import Delivery, DeliveryStatus, MeetingSession, SessionStatus
from workers.participant_facts import SegmentFacts
from workers.recompute import recompute_session
from workers.regroup import AMENDMENT, regroup
from workers.room_timeline import Mark
from workers.session_facts import apply_session_fact
from workers.unnamed import Move, has_unnamed, misplaced


@dataclass
class FoldOutcome:
    """What a fold changed, for the caller to act on after commit."""

    finalize_due: dict[int, datetime] = field(default_factory=dict)
    amended_session_ids: set[int] = field(default_factory=set)
    failed_ids: set[int] = field(default_factory=set)

    def folded_ids(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Return the ids of `deliveries` that were folded (not refused as unfoldable)."""
        return [delivery.id for delivery in deliveries if delivery.id not in self.failed_ids]


def apply_deliveries(
    db: Session,
    room_id: int,
    deliveries: Sequence[Delivery],
    rules: FoldRules | None = None,
    *,
    job_id: str | None = None,
    cause: str = "deliveries",
) -> FoldOutcome:
    """Fold `deliveries` (all of one room) into sessions and attendance; the caller commits."""
    rules = rules or FoldRules()
    resolver = MeetingResolver(db, room_id, rules)
    touched: dict[int, _Touched] = {}
    outcome = FoldOutcome()
    marks: list[Mark] = []
    moved: list[Move] = []  # replayed deliveries the fold put in another session than before
    for delivery in deliveries:
        try:
            facts = facts_of(delivery)
            meeting = resolver.session_for(facts)
        except (BodyError, ForeignSession) as error:
            # Its content, not the moment, is at fault: retrying cannot help, and it must not hold up
            # the room's other deliveries. It stays in the audit log, failed, with why; replay it once fixed.
            delivery.status, delivery.status_reason = DeliveryStatus.FAILED, f"cannot be folded: {error}"
            outcome.failed_ids.add(delivery.id)
            continue
        if delivery.session_id is not None and delivery.session_id != meeting.id:
            moved.append(Move(delivery.id, delivery.session_id, meeting.meeting_session_id, done=True))
        delivery.session_id = meeting.id
        if facts.event in (START, END):
            marks.append(Mark(facts.event, facts.event_time, facts.meeting_session_id))
        entry = touched.setdefault(meeting.id, _Touched(meeting, meeting.status == SessionStatus.FINAL))
        if entry.was_final:
            delivery.status_reason = AMENDMENT
        entry.delivery_ids.append(delivery.id)
        apply_session_fact(meeting, facts, delivery.received_at)
        participant = segment_facts_of(facts)
        if participant is not None:
            entry.participants.append(participant)
    for entry in touched.values():
        person_keys = merge_participants(db, entry.meeting, entry.participants)
        _settle(db, entry, person_keys, rules, outcome, cause, job_id)
    if marks and has_unnamed(db, room_id):
        moved += misplaced(db, resolver.timeline, marks)
    if moved:
        _regroup(db, resolver, moved, rules, outcome, job_id)
    return outcome


def _regroup(
    db: Session,
    resolver: MeetingResolver,
    moves: Sequence[Move],
    rules: FoldRules,
    outcome: FoldOutcome,
    job_id: str | None,
) -> None:
    db.flush()
    regrouped = regroup(db, resolver, moves, job_id)
    for session_id in regrouped.deleted_ids:
        outcome.finalize_due.pop(session_id, None)
        outcome.amended_session_ids.discard(session_id)
    for meeting, change in regrouped.rebuilt:
        if meeting.status == SessionStatus.FINAL and change.changed:
            outcome.amended_session_ids.add(meeting.id)
        _finalize_when_due(meeting, rules, outcome)


@dataclass
class _Touched:
    meeting: MeetingSession
    was_final: bool
    delivery_ids: list[int] = field(default_factory=list)
    participants: list[SegmentFacts] = field(default_factory=list)


def _settle(
    db: Session,
    entry: _Touched,
    person_keys: set[str],
    rules: FoldRules,
    outcome: FoldOutcome,
    cause: str,
    job_id: str | None,
) -> None:
    meeting = entry.meeting
    change = recompute_session(db, meeting, person_keys)
    amended = entry.was_final and change.changed
    history.record(
        db, meeting, "amendment" if amended else cause, change, delivery_ids=entry.delivery_ids, job_id=job_id
    )
    if amended:
        outcome.amended_session_ids.add(meeting.id)
    _finalize_when_due(meeting, rules, outcome)


def _finalize_when_due(meeting: MeetingSession, rules: FoldRules, outcome: FoldOutcome) -> None:
    if meeting.end_received_at is not None and meeting.status != SessionStatus.FINAL:
        outcome.finalize_due[meeting.id] = meeting.end_received_at + timedelta(
            seconds=rules.finalize_after_seconds
        )
    else:
        outcome.finalize_due.pop(meeting.id, None)
