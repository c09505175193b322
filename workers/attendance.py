"""Attendance maths: participant-session facts in, segments, sessions and per-person attendance out.

Pure functions only: no clock, no I/O. Every result depends on the *set* of facts, never on their order
or on duplicates, so a rebuild from the stored webhooks gives the same answer as the first time.
Durations are integer milliseconds inside; results expose seconds rounded to 3 decimals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

from workers import presence
from workers.participant_facts import Identity, SegmentFacts, merge_identity, merge_into, person_key
from workers.segments import Segment, SessionBounds, resolve_segment, session_bounds

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class AttendanceRules:
    reconnect_grace_ms: int
    min_attendance_percent: float | None


@dataclass(frozen=True, slots=True)
class PersonAttendance:
    participant_key: str
    identified_by: str
    name: str | None
    email: str | None
    external_user_id: str | None
    first_join_at: datetime
    last_left_at: datetime | None  # None while any segment is open
    attended_seconds: float
    attendance_percent: float | None  # None while live
    join_count: int
    present: bool | None  # None while live
    inferred: bool
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class SessionResult:
    bounds: SessionBounds
    duration_seconds: float | None  # None while live
    participant_count: int
    peak_concurrency: int
    attendance: tuple[PersonAttendance, ...]  # the people asked for, sorted by participant_key


def seconds(ms: int) -> float:
    """Return milliseconds as seconds rounded to 3 decimals."""
    return round(ms / 1000, 3)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


def _segment_order(s: Segment) -> tuple[datetime, bool, datetime, str, bool]:
    return s.joined_at, s.left_at is None, s.left_at or s.joined_at, s.participant_session_id, s.inferred


def _presence_ms(segment: Segment) -> tuple[int, int]:
    return _ms(segment.joined_at), presence.FOREVER if segment.left_at is None else _ms(segment.left_at)


def union_ms(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """Return the length in ms of the union of half-open [start, end) intervals."""
    return presence.covered_ms((_ms(s), _ms(e)) for s, e in intervals)


def count_joins(segments: Iterable[Segment], grace_ms: int) -> int:
    """Count one person's joins; reconnects within the grace and overlapping segments are not joins."""
    return presence.count_joins(map(_presence_ms, segments), grace_ms)


def peak_concurrency(people: Mapping[str, Sequence[Segment]]) -> int:
    """Return the largest number of distinct people present at one instant."""
    return presence.peak(presence.spans(map(_presence_ms, segments)) for segments in people.values())


def _percent(attended_ms: int, duration_ms: int) -> float:
    if duration_ms == 0:
        return 0.0
    # Round half up in integer tenths of a percent: no float drift at the .x5 boundary.
    return (2000 * attended_ms + duration_ms) // (2 * duration_ms) / 10


def person_attendance(
    key: str,
    identified_by: str,
    segments: Sequence[Segment],
    identities: Sequence[Identity],
    bounds: SessionBounds,
    rules: AttendanceRules,
) -> tuple[PersonAttendance, list[tuple[int, int]]]:
    """Summarise one person's segments in one session; also return their presence spans, in ms."""
    # The spans are what the session's peak needs: each segment's times are turned into milliseconds
    # once, not once for each figure.
    if not segments:
        raise ValueError("a person needs at least one segment")
    ordered = tuple(sorted(segments, key=_segment_order))
    intervals = [_presence_ms(s) for s in ordered]
    started_ms = _ms(bounds.started_at)
    ended_ms = presence.FOREVER if bounds.ended_at is None else _ms(bounds.ended_at)
    # Clipping in ms is clipping the times: _ms never reverses an order.
    attended_ms = presence.covered_ms(
        (min(max(start, started_ms), ended_ms), min(max(end, started_ms), ended_ms))
        for (start, end), s in zip(intervals, ordered, strict=True)
        if s.left_at is not None
    )
    percent = present = None
    if bounds.ended_at is not None:
        percent = _percent(attended_ms, ended_ms - started_ms)
        threshold = rules.min_attendance_percent
        present = attended_ms > 0 if threshold is None else percent >= threshold
    identity = reduce(merge_identity, identities, Identity())
    leaves = [s.left_at for s in ordered if s.left_at is not None]
    person = PersonAttendance(
        participant_key=key,
        identified_by=identified_by,
        name=identity.name,
        email=identity.email,
        external_user_id=identity.external_user_id,
        first_join_at=ordered[0].joined_at,
        last_left_at=max(leaves) if len(leaves) == len(ordered) else None,
        attended_seconds=seconds(attended_ms),
        attendance_percent=percent,
        join_count=presence.count_joins(intervals, rules.reconnect_grace_ms),
        present=present,
        inferred=any(s.inferred for s in ordered),
        segments=ordered,
    )
    return person, presence.spans(intervals)


def compute_session(
    start_time: datetime | None,
    end_time: datetime | None,
    segment_facts: Iterable[SegmentFacts],
    rules: AttendanceRules,
    *,
    closed_by_sweeper: bool = False,
    fallback_start: datetime | None = None,
    people: Collection[str] | None = None,
) -> SessionResult:
    """Compute one meeting session's bounds, peak and attendance (of `people` only, if given) from its facts.

    The one attendance computation: the fold asks for the people a batch touched, a rebuild for everyone.
    """
    merged: dict[str, SegmentFacts] = {}
    for facts in segment_facts:
        merge_into(merged, facts)
    bounds = session_bounds(
        start_time,
        end_time,
        merged.values(),
        closed_by_sweeper=closed_by_sweeper,
        fallback_start=fallback_start,
    )
    groups: defaultdict[tuple[str, str], list[SegmentFacts]] = defaultdict(list)
    for facts in merged.values():
        groups[person_key(facts.identity, facts.participant_session_id)].append(facts)
    attendance: list[PersonAttendance] = []
    spans_per_person: list[list[tuple[int, int]]] = []
    for (key, by), group in sorted(groups.items()):
        segments = [resolve_segment(f, bounds) for f in group]
        if people is None or key in people:
            person, spans = person_attendance(key, by, segments, [f.identity for f in group], bounds, rules)
            attendance.append(person)
        else:  # only their presence counts, for the peak
            spans = presence.spans(map(_presence_ms, segments))
        spans_per_person.append(spans)
    ended_at = bounds.ended_at
    return SessionResult(
        bounds=bounds,
        duration_seconds=None if ended_at is None else seconds(_ms(ended_at) - _ms(bounds.started_at)),
        participant_count=len(groups),
        peak_concurrency=presence.peak(spans_per_person),
        attendance=tuple(attendance),
    )
