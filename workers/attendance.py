"""Attendance maths: participant-session facts in, segments, sessions and per-person attendance out.

Pure functions only: no clock, no I/O. Every result depends on the *set* of facts, never on their order
or on duplicates, so a rebuild from the stored webhooks gives the same answer as the first time.
Durations are integer milliseconds inside; results expose seconds rounded to 3 decimals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce

from workers.participant_facts import Identity, SegmentFacts, merge_identity, merge_segment_facts, person_key

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_FOREVER = 2**63  # the end, in ms, of a segment that is still open


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
    attendance: tuple[PersonAttendance, ...]  # sorted by participant_key


def seconds(ms: int) -> float:
    """Return milliseconds as seconds rounded to 3 decimals."""
    return round(ms / 1000, 3)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


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


def _segment_order(s: Segment) -> tuple[datetime, bool, datetime, str, bool]:
    return s.joined_at, s.left_at is None, s.left_at or s.joined_at, s.participant_session_id, s.inferred


def _presence_ms(segment: Segment) -> tuple[int, int]:
    return _ms(segment.joined_at), _FOREVER if segment.left_at is None else _ms(segment.left_at)


def _spans(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    # Touching spans merge too: handing over from one device to another is no absence.
    spans: list[tuple[int, int]] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def union_ms(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """Return the length in ms of the union of half-open [start, end) intervals."""
    return sum(end - start for start, end in _spans((_ms(s), _ms(e)) for s, e in intervals))


def count_joins(segments: Iterable[Segment], grace_ms: int) -> int:
    """Count one person's joins; reconnects within the grace and overlapping segments are not joins."""
    return _count_joins(map(_presence_ms, segments), grace_ms)


def _count_joins(presence: Iterable[tuple[int, int]], grace_ms: int) -> int:
    joins, last_present = 0, None  # last_present: the latest leave so far, in ms
    for start, end in sorted(presence):
        # An overlap (an earlier segment still open at this join) has a negative gap.
        if last_present is None or start - last_present >= grace_ms:
            joins += 1
        last_present = end if last_present is None else max(last_present, end)
    return joins


def peak_concurrency(people: Mapping[str, Sequence[Segment]]) -> int:
    """Return the largest number of distinct people present at one instant."""
    return _peak(_spans(map(_presence_ms, segments)) for segments in people.values())


def _peak(spans_per_person: Iterable[list[tuple[int, int]]]) -> int:
    # A sweep over the sorted starts and ends (plain ints sort much faster than (time, change) events):
    # the people present as a span starts are the spans started so far less those already ended.
    starts: list[int] = []
    ends: list[int] = []
    for spans in spans_per_person:
        for start, end in spans:
            starts.append(start)
            ends.append(end)
    starts.sort()
    ends.sort()
    peak = ended = 0
    for started, start in enumerate(starts, 1):
        while ends[ended] <= start:  # a leave at this instant counts first: a hand-over is no overlap
            ended += 1
        peak = max(peak, started - ended)
    return peak


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
) -> PersonAttendance:
    """Summarise one person's segments in one session."""
    return _person_attendance(key, identified_by, segments, identities, bounds, rules)[0]


def _person_attendance(
    key: str,
    identified_by: str,
    segments: Sequence[Segment],
    identities: Sequence[Identity],
    bounds: SessionBounds,
    rules: AttendanceRules,
) -> tuple[PersonAttendance, list[tuple[int, int]]]:
    # Also returns the person's presence spans, which the session's peak needs: each segment's times are
    # turned into milliseconds once, not once for each figure.
    if not segments:
        raise ValueError("a person needs at least one segment")
    ordered = tuple(sorted(segments, key=_segment_order))
    presence = [_presence_ms(s) for s in ordered]
    started_ms = _ms(bounds.started_at)
    ended_ms = _FOREVER if bounds.ended_at is None else _ms(bounds.ended_at)
    # Clipping in ms is clipping the times: _ms never reverses an order.
    attended_ms = sum(
        end - start
        for start, end in _spans(
            (min(max(start, started_ms), ended_ms), min(max(end, started_ms), ended_ms))
            for (start, end), s in zip(presence, ordered, strict=True)
            if s.left_at is not None
        )
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
        join_count=_count_joins(presence, rules.reconnect_grace_ms),
        present=present,
        inferred=any(s.inferred for s in ordered),
        segments=ordered,
    )
    return person, _spans(presence)


def compute_session(
    start_time: datetime | None,
    end_time: datetime | None,
    segment_facts: Iterable[SegmentFacts],
    rules: AttendanceRules,
    *,
    closed_by_sweeper: bool = False,
    fallback_start: datetime | None = None,
) -> SessionResult:
    """Compute one meeting session's bounds, attendance and peak from every fact received."""
    merged: dict[str, SegmentFacts] = {}
    for facts in segment_facts:
        seen = merged.get(facts.participant_session_id)
        merged[facts.participant_session_id] = facts if seen is None else merge_segment_facts(seen, facts)
    bounds = session_bounds(
        start_time,
        end_time,
        merged.values(),
        closed_by_sweeper=closed_by_sweeper,
        fallback_start=fallback_start,
    )
    people: defaultdict[tuple[str, str], list[SegmentFacts]] = defaultdict(list)
    for facts in merged.values():
        people[person_key(facts.identity, facts.participant_session_id)].append(facts)
    attendance: list[PersonAttendance] = []
    presence: list[list[tuple[int, int]]] = []
    for (key, by), group in sorted(people.items()):
        segments = [resolve_segment(f, bounds) for f in group]
        person, spans = _person_attendance(key, by, segments, [f.identity for f in group], bounds, rules)
        attendance.append(person)
        presence.append(spans)
    ended_at = bounds.ended_at
    return SessionResult(
        bounds=bounds,
        duration_seconds=None if ended_at is None else seconds(_ms(ended_at) - _ms(bounds.started_at)),
        participant_count=len(attendance),
        peak_concurrency=_peak(presence),
        attendance=tuple(attendance),
    )
