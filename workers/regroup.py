"""Move unnamed deliveries to the sessions a re-cut timeline puts them in; say which sessions to rebuild.

A session whose deliveries all go to one name is renamed rather than emptied: a late start then gives the
meeting its proper name while it keeps its row, status, history and the notifications already sent about
it. Otherwise deliveries move, and a session left with none is deleted, unless someone was told about it;
its history goes with its deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from workers.inbox import AMENDMENT, IN_CHUNK
from workers.meetings import MeetingResolver
from workers.models import (
    AttendanceRow,
    Delivery,
    MeetingSession,
    Notification,
    ParticipantSession,
    SessionChange,
    SessionStatus,
)
from workers.unnamed import Move


@dataclass
class Regrouped:
    """The sessions a regroup changed, for the caller to rebuild, and the ones it deleted."""

    changed: list[MeetingSession] = field(default_factory=list)
    deleted_ids: set[int] = field(default_factory=set)


def regroup(db: Session, resolver: MeetingResolver, moves: Sequence[Move]) -> Regrouped:
    """Carry out `moves` (those the fold made already, and those still to make); return what they touched."""
    by_source: dict[int, list[Move]] = defaultdict(list)
    for move in moves:
        by_source[move.from_session_id].append(move)
    pending = [move for move in moves if not move.done]
    outcome = Regrouped()
    for source_id, its_moves in by_source.items():
        names = {move.to_meeting_session_id for move in its_moves}
        emptied = len(names) == 1 and _left_behind(db, source_id, its_moves) == 0
        source = db.get_one(MeetingSession, source_id)
        if emptied and _adopt_name(db, resolver, source, names.pop(), outcome):
            pending = [move for move in pending if move.from_session_id != source_id]
    affected = {source_id: db.get_one(MeetingSession, source_id) for source_id in by_source}
    for name, delivery_ids in _grouped(pending).items():
        target = resolver.by_id(name)
        _move_deliveries(db, delivery_ids, target)
        affected[target.id] = target
    db.flush()
    for meeting in affected.values():
        if _delete_if_empty(db, meeting, _heir_id(resolver, by_source.get(meeting.id, []))):
            resolver.forget(meeting)
            outcome.deleted_ids.add(meeting.id)
            continue
        outcome.changed.append(meeting)
    return outcome


def _heir_id(resolver: MeetingResolver, moves: Sequence[Move]) -> int | None:
    # A session the moves empty leaves its history to where its first moved delivery went.
    heir = resolver.find(moves[0].to_meeting_session_id) if moves else None
    return heir.id if heir else None


def _left_behind(db: Session, session_id: int, moves: Sequence[Move]) -> int:
    held = db.scalar(select(func.count(Delivery.id)).where(Delivery.session_id == session_id)) or 0
    return held - sum(not move.done for move in moves)


def _adopt_name(
    db: Session, resolver: MeetingResolver, source: MeetingSession, name: str, outcome: Regrouped
) -> bool:
    taken = resolver.find(name)
    if taken is not None:
        if taken.id not in resolver.created:
            return False
        # The name went to a session this fold made for a late start or end: the older session takes
        # that one's deliveries, then its name, and the history of what those deliveries did.
        db.execute(update(Delivery).where(Delivery.session_id == taken.id).values(_moved_into(source)))
        _delete_session(db, taken, heir_id=source.id)
        outcome.deleted_ids.add(taken.id)
        resolver.forget(taken)
        db.flush()
    resolver.rename(source, name)
    db.flush()
    return True


def _grouped(moves: Sequence[Move]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for move in moves:
        grouped[move.to_meeting_session_id].append(move.delivery_id)
    return grouped


def _move_deliveries(db: Session, delivery_ids: list[int], target: MeetingSession) -> None:
    for chunk in range(0, len(delivery_ids), IN_CHUNK):
        chosen = Delivery.id.in_(delivery_ids[chunk : chunk + IN_CHUNK])
        db.execute(update(Delivery).where(chosen).values(_moved_into(target)))


def _moved_into(target: MeetingSession) -> dict[str, object]:
    values: dict[str, object] = {"session_id": target.id}
    if target.status == SessionStatus.FINAL:
        values["status_reason"] = AMENDMENT
    return values


def _delete_if_empty(db: Session, meeting: MeetingSession, heir_id: int | None) -> bool:
    holds_any = db.scalar(select(exists(select(Delivery.id).where(Delivery.session_id == meeting.id))))
    told = db.scalar(select(exists(select(Notification.id).where(Notification.session_id == meeting.id))))
    if holds_any or told:
        return False
    _delete_session(db, meeting, heir_id)
    return True


def _delete_session(db: Session, meeting: MeetingSession, heir_id: int | None) -> None:
    # The history of what a session's deliveries did goes where they went; the derived rows are rebuilt.
    if heir_id is not None:
        db.execute(
            update(SessionChange).where(SessionChange.session_id == meeting.id).values(session_id=heir_id)
        )
    db.execute(delete(AttendanceRow).where(AttendanceRow.session_id == meeting.id))
    db.execute(delete(ParticipantSession).where(ParticipantSession.session_id == meeting.id))
    db.execute(delete(SessionChange).where(SessionChange.session_id == meeting.id))
    db.delete(meeting)
