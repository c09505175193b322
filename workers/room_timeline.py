"""Which meeting a delivery that names no meeting session belongs to: a room's timeline, cut into stretches.

A room holds one meeting at a time. Its reported starts and ends (and the ends the sweeper inferred) cut
its timeline: a cut before every start, a cut after every end. Each stretch between two cuts is one
meeting as far as unnamed deliveries can tell. The stretch is named by a start in it that carries a
meeting session id, else by an end in it that does, else after its lower cut. Pure: the answer depends
only on the set of marks, never on the order they came in.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from workers.deliveries.parsing import END, JOIN, LEAVE, START

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
