"""Which meeting session each delivery belongs to, and moving deliveries when that answer changes.

A delivery that names its meeting session belongs to it (MeetingResolver, which creates sessions as they
appear). One that names none goes to the meeting of the stretch of its room's timeline it falls in: a room
holds one meeting at a time, and its reported starts and ends (and the ends the sweeper inferred) cut its
timeline, a cut before every start and after every end. Each stretch between two cuts is one meeting as
far as unnamed deliveries can tell; it is named by a start in it that carries a meeting session id, else
by an end in it that does, else after its lower cut. A start or end folded later may cut a stretch in two
or name it: the fold then finds the unnamed deliveries near the new mark and regroups those now in the
wrong session. A session whose deliveries all go to one name is renamed rather than emptied, so a late
start gives the meeting its proper name while it keeps its row, status, history and the notifications
already sent about it; otherwise deliveries move, and a session left with none is deleted unless someone
was told about it. The answer depends only on the set of deliveries, never on their order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from workers.deliveries.parsing import END, JOIN, LEAVE, START, DeliveryFacts
from workers.inbox import AMENDMENT, IN_CHUNK
from workers.locks import lock_room_row
from workers.models import (
    AttendanceRow,
    Delivery,
    DeliveryStatus,
    MeetingSession,
    Notification,
    ParticipantSession,
    SessionChange,
    SessionStatus,
)
from workers.models.inbox import IS_MARK
from workers.statuses import rules_of

# The room's timeline: pure, from the set of marks.

# Where things sit at one instant: leaves, the end, the cut after it, the cut before a start, the start,
# joins. So a meeting that ends the very ms the next one starts keeps its leaves and its end, and the next
# one gets its start and its joins: back-to-back meetings with times in whole seconds are told apart.
_LEAVE, _END, _AFTER_END, _BEFORE_START, _START, _JOIN = range(6)
_KIND = {LEAVE: _LEAVE, END: _END, START: _START, JOIN: _JOIN}

Position = tuple[datetime, int]


@dataclass(frozen=True)
class Mark:
    """A start or end in a room: the meeting session id it names, if any, and when it happened."""

    event: str
    at: datetime
    meeting_session_id: str | None = None


@dataclass(frozen=True)
class Stretch:
    """The part of a room's timeline between two cuts, as positions; None is open-ended."""

    after: Position | None
    before: Position | None

    def holds(self, position: Position) -> bool:
        """Say whether `position` lies inside this stretch."""
        return (self.after is None or position > self.after) and (
            self.before is None or position < self.before
        )


def position(event: str, at: datetime) -> Position:
    """Return where a delivery of `event` at `at` sits on its room's timeline."""
    return (at, _KIND[event])


def _cut(mark: Mark) -> Position:
    return (mark.at, _BEFORE_START if mark.event == START else _AFTER_END)


class Timeline:
    """A room's marks, sorted into cuts, and the stretch and meeting each position falls in."""

    def __init__(self, room_id: int, marks: Iterable[Mark]) -> None:
        self.room_id = room_id
        ordered = sorted(
            set(marks), key=lambda mark: (position(mark.event, mark.at), mark.meeting_session_id or "")
        )
        self.cuts = sorted({_cut(mark) for mark in ordered})
        self._names: dict[int, str] = {}
        # A named start outranks a named end in the same stretch, then the earlier: the sort is stable.
        for mark in sorted(ordered, key=lambda mark: mark.event != START):
            if mark.meeting_session_id:
                self._names.setdefault(self._index(position(mark.event, mark.at)), mark.meeting_session_id)

    def _index(self, at: Position) -> int:
        # No position equals a cut (their second parts differ), so this counts the cuts before it.
        return bisect_left(self.cuts, at)

    def meeting_at(self, at: Position) -> str:
        """Return the meeting session id of the stretch that holds `at`."""
        index = self._index(at)
        if index in self._names:
            return self._names[index]
        if index == 0:
            return f"room-{self.room_id}-first"
        moment, kind = self.cuts[index - 1]
        return f"room-{self.room_id}-{'' if kind == _BEFORE_START else 'after-'}{_stamp(moment)}"

    def around(self, mark: Mark) -> Stretch:
        """Return the span a new mark may have re-cut or renamed: from the cut before it to the cut after."""
        cut = _cut(mark)
        before, after = bisect_left(self.cuts, cut), bisect_right(self.cuts, cut)
        return Stretch(
            self.cuts[before - 1] if before > 0 else None,
            self.cuts[after] if after < len(self.cuts) else None,
        )


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"


# The timeline as stored, and the unnamed deliveries a new mark re-places.


def place(event: str, event_time: datetime, join_time: datetime | None) -> Position:
    """Return where an unnamed delivery sits: a leave that reports its join time goes where its join went."""
    if event == LEAVE and join_time is not None:
        # Never later than the leave itself, should the two clocks disagree: the search below relies on it.
        return position(JOIN, min(join_time, event_time))
    return position(event, event_time)


def load_timeline(db: Session, room_id: int) -> Timeline:
    """Return the room's timeline: every start and end stored (folded or not) and every sweeper's cut."""
    reported = db.execute(
        select(Delivery.event, Delivery.event_time, Delivery.meeting_session_ref).where(
            Delivery.room_id == room_id,
            IS_MARK,
            Delivery.status != DeliveryStatus.FAILED,
        )
    ).all()
    swept = db.execute(
        select(MeetingSession.sweep_cut_at, MeetingSession.meeting_session_id).where(
            MeetingSession.room_id == room_id, MeetingSession.sweep_cut_at.is_not(None)
        )
    ).all()
    foreign = _foreign_names(db, room_id, {ref for _, _, ref in reported if ref})
    # A start or end naming another room's session will fail to fold: it must not cut this room's timeline.
    # (The receiver always keeps a time; a row without one cannot be placed and cuts nothing.)
    marks = [Mark(event, at, ref) for event, at, ref in reported if at and ref not in foreign]
    marks += [Mark(END, cut, name) for cut, name in swept if cut]
    return Timeline(room_id, marks)


def _foreign_names(db: Session, room_id: int, names: set[str]) -> set[str]:
    if not names:
        return set()
    query = select(MeetingSession.meeting_session_id).where(
        MeetingSession.meeting_session_id.in_(sorted(names)), MeetingSession.room_id != room_id
    )
    return set(db.scalars(query))


def has_unnamed(db: Session, room_id: int) -> bool:
    """Say whether the room has any delivery that names no meeting session (most rooms have none)."""
    unnamed = select(Delivery.id).where(Delivery.room_id == room_id, Delivery.meeting_session_ref.is_(None))
    return bool(db.scalar(select(exists(unnamed))))


def last_fact_at(db: Session, session_id: int) -> datetime | None:
    """Return the time of the latest delivery folded into a session."""
    return db.scalar(select(func.max(Delivery.event_time)).where(Delivery.session_id == session_id))


@dataclass(frozen=True)
class Move:
    """An unnamed delivery folded into one session that the re-cut timeline puts in another."""

    delivery_id: int
    from_session_id: int
    to_meeting_session_id: str
    done: bool = False  # the fold itself already put it there (a replayed delivery)


def misplaced(db: Session, timeline: Timeline, new_marks: Iterable[Mark]) -> list[Move]:
    """Return the moves that the new marks' re-cutting of the timeline calls for."""
    spans = [timeline.around(mark) for mark in new_marks]
    if not spans:
        return []
    query = (
        select(
            Delivery.id,
            Delivery.event,
            Delivery.event_time,
            Delivery.join_time,
            MeetingSession.id,
            MeetingSession.meeting_session_id,
        )
        .join(MeetingSession, MeetingSession.id == Delivery.session_id)
        .where(
            Delivery.room_id == timeline.room_id,
            Delivery.meeting_session_ref.is_(None),
            Delivery.status == DeliveryStatus.PROCESSED,
        )
    )
    lowest = [span.after[0] for span in spans if span.after is not None]
    if len(lowest) == len(spans):
        # Nothing is placed later than its own time (see place), so this bound misses none.
        query = query.where(Delivery.event_time >= min(lowest))
    moves = []
    for delivery_id, event, event_time, join_time, session_id, now_in in db.execute(query):
        if event_time is None:
            continue  # the receiver always keeps a time; a row without one stays where it was folded
        at = place(event, event_time, join_time)
        if any(span.holds(at) for span in spans) and (target := timeline.meeting_at(at)) != now_in:
            moves.append(Move(delivery_id, session_id, target))
    return moves


# Each delivery's session.


class ForeignSession(ValueError):
    """A delivery names a meeting session that another room's deliveries created."""


@dataclass(frozen=True)
class FoldRules:
    """Settings that shape how facts are folded."""

    reconnect_grace_seconds: int
    finalize_after_seconds: int


class MeetingResolver:
    """Map deliveries of one room to their meeting sessions, creating sessions as they appear."""

    def __init__(self, db: Session, room_id: int, rules: FoldRules) -> None:
        self.db, self.rules = db, rules
        self.room = lock_room_row(db, room_id)
        self.known: dict[str, MeetingSession] = {}
        self.created: set[int] = set()  # ids of the sessions this fold made
        self._timeline: Timeline | None = None

    @property
    def timeline(self) -> Timeline:
        """The room's timeline as stored when first asked for; a start or end stored later re-places later."""
        if self._timeline is None:
            self._timeline = load_timeline(self.db, self.room.id)
        return self._timeline

    def session_for(self, facts: DeliveryFacts) -> MeetingSession:
        """Return the delivery's meeting session: by its id, else by where it falls on the room's timeline."""
        if facts.meeting_session_id:
            return self.by_id(facts.meeting_session_id)
        return self.by_id(self.timeline.meeting_at(place(facts.event, facts.event_time, facts.join_time)))

    def find(self, meeting_session_id: str) -> MeetingSession | None:
        """Return the meeting session of that id, if there is one."""
        return self.known.get(meeting_session_id) or self.db.scalar(
            select(MeetingSession).where(MeetingSession.meeting_session_id == meeting_session_id)
        )

    def forget(self, meeting: MeetingSession) -> None:
        """Drop a session renamed or deleted from what this fold knows."""
        if self.known.get(meeting.meeting_session_id) is meeting:
            del self.known[meeting.meeting_session_id]

    def rename(self, meeting: MeetingSession, meeting_session_id: str) -> None:
        """Give a session another meeting session id, and know it by that one."""
        self.forget(meeting)
        meeting.meeting_session_id = meeting_session_id
        self.known[meeting_session_id] = meeting

    def by_id(self, meeting_session_id: str) -> MeetingSession:
        """Return the room's meeting session of that id, creating it if it is new."""
        meeting = self.find(meeting_session_id)
        if meeting is None:
            # The rules are stamped now, so a later change to the room does not rewrite this session.
            judging = rules_of(self.room.options)
            meeting = MeetingSession(
                room_id=self.room.id,
                meeting_session_id=meeting_session_id,
                status=SessionStatus.LIVE,
                min_attendance_percent=self.room.min_attendance_percent,
                reconnect_grace_seconds=self.rules.reconnect_grace_seconds,
                late_after_seconds=judging.late_after_seconds,
                early_leave_seconds=judging.early_leave_seconds,
                include_hosts_in_attendance=judging.include_hosts,
            )
            self.db.add(meeting)
            self.db.flush()
            self.created.add(meeting.id)
        elif meeting.room_id != self.room.id:
            raise ForeignSession(f"meeting session {meeting_session_id} belongs to another room")
        self.known[meeting_session_id] = meeting
        return meeting


# Moving deliveries to the sessions a re-cut timeline puts them in.


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
