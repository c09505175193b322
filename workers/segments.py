"""When a meeting session started and ended, and where each participant session lies within it.

Pure: the session's bounds stand in for what no webhook reported, and a participant session's facts are
clipped to them as one segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from workers.participant_facts import SegmentFacts


@dataclass(frozen=True, slots=True)
class SessionBounds:
    started_at: datetime
    ended_at: datetime | None  # None while the session is live
    start_inferred: bool  # no start webhook: the earliest join (or the caller's fallback) stood in
    end_inferred: bool  # closed by the sweeper, not by an end webhook


@dataclass(frozen=True, slots=True)
class Segment:
    participant_session_id: str
    joined_at: datetime
    left_at: datetime | None  # None: still open in a live session
    inferred: bool  # the session's start or end stood in for a bound


def _known(*moments: datetime | None) -> list[datetime]:
    return [m for m in moments if m is not None]


def session_bounds(
    start_time: datetime | None,
    end_time: datetime | None,
    segments: Iterable[SegmentFacts],
    *,
    closed_by_sweeper: bool = False,
    fallback_start: datetime | None = None,
) -> SessionBounds:
    """Decide when the session started and ended, standing in for what no webhook reported."""
    facts = list(segments)
    joins = _known(*(f.joined_at for f in facts))
    leaves = _known(*(f.left_at for f in facts))
    candidates = _known(start_time, min(joins, default=None), fallback_start)
    if not candidates:
        raise ValueError("no start time, no join and no fallback: the session has no start")
    started_at, ended_at = candidates[0], end_time
    if ended_at is None and closed_by_sweeper:
        ended_at = _known(max(leaves, default=None), max(joins, default=None), started_at)[0]
    return SessionBounds(
        started_at=started_at,
        # Skewed clocks can report an end before the start; a negative duration helps nobody.
        ended_at=None if ended_at is None else max(ended_at, started_at),
        start_inferred=start_time is None,
        end_inferred=end_time is None and closed_by_sweeper,
    )


def _clip(moment: datetime, bounds: SessionBounds) -> datetime:
    moment = max(moment, bounds.started_at)
    return moment if bounds.ended_at is None else min(moment, bounds.ended_at)


def resolve_segment(facts: SegmentFacts, bounds: SessionBounds) -> Segment:
    """Turn one participant session's facts into a segment within the session's bounds."""
    joined_at = _clip(facts.joined_at or bounds.started_at, bounds)
    left_at = facts.left_at or bounds.ended_at
    if left_at is not None:
        left_at = max(_clip(left_at, bounds), joined_at)  # a leave reported before its join
    # Only stand-ins are inferred: a reported time moved by clipping still lies in a reported range.
    inferred = facts.joined_at is None or (facts.left_at is None and bounds.ended_at is not None)
    return Segment(facts.participant_session_id, joined_at, left_at, inferred)
