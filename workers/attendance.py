"""The pure attendance core: what deliveries say, merged, in; a session's bounds and attendance out.

No clock, no I/O. Every result depends on the *set* of facts, never on their order or on duplicates: each
merge is commutative, associative and idempotent, so a rebuild from the stored webhooks gives the same
answer as the first fold. Read top to bottom: presence as integer milliseconds; who a participant session
is and what its deliveries say; what they say about the meeting session itself; the session's bounds and
each segment within them; per-person attendance and the session's figures. Durations are integer
milliseconds inside; results expose seconds rounded to 3 decimals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import NamedTuple, Protocol

from workers.deliveries.parsing import END, JOIN, PARTICIPANT_EVENTS, START, DeliveryFacts
from workers.models import SessionStatus

# Presence as integer-millisecond intervals: a big session's figures sort and sweep hundreds of thousands
# of these, and ints compare far faster than datetimes.

_FOREVER = 2**63  # the end, in ms, of a segment that is still open


def _spans(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the union of half-open [start, end) intervals as sorted, disjoint spans."""
    # Touching spans merge too: handing over from one device to another is no absence.
    merged: list[tuple[int, int]] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered_ms(intervals: Iterable[tuple[int, int]]) -> int:
    """Return how long the union of half-open [start, end) intervals lasts."""
    return sum(end - start for start, end in _spans(intervals))


def _count_joins_ms(presence: Iterable[tuple[int, int]], grace_ms: int) -> int:
    """Count one person's joins: a return within the grace, or while still present, is not one."""
    joins, last_present = 0, None  # last_present: the latest leave so far, in ms
    for start, end in sorted(presence):
        # An overlap (an earlier segment still open at this join) has a negative gap.
        if last_present is None or start - last_present >= grace_ms:
            joins += 1
        last_present = end if last_present is None else max(last_present, end)
    return joins


def _peak(spans_per_person: Iterable[list[tuple[int, int]]]) -> int:
    """Return the most people present at one instant, given each person's disjoint spans."""
    # A sweep over the sorted starts and ends (plain ints sort much faster than (time, change) events):
    # the people present as a span starts are the spans started so far less those already ended.
    starts: list[int] = []
    ends: list[int] = []
    for person_spans in spans_per_person:
        for start, end in person_spans:
            starts.append(start)
            ends.append(end)
    starts.sort()
    ends.sort()
    most = ended = 0
    for started, start in enumerate(starts, 1):
        while ends[ended] <= start:  # a leave at this instant counts first: a hand-over is no overlap
            ended += 1
        most = max(most, started - ended)
    return most


# Who a participant session is, and what its deliveries say about it.


# NamedTuples, not frozen dataclasses, for speed: see DeliveryFacts.
class Identity(NamedTuple):
    """What a delivery says identifies a person."""

    external_user_id: str | None = None
    email: str | None = None
    name: str | None = None


class SegmentFacts(NamedTuple):
    """What is known about one participant session, merged from its join and leave deliveries."""

    participant_session_id: str
    joined_at: datetime | None = None  # the join webhook's time, or a leave's joinTime
    left_at: datetime | None = None
    identity: Identity = Identity()
    is_admin: bool | None = None  # Metered's isAdmin on any of its deliveries; None where none said


def _is_blank(value: str) -> bool:
    return not value.strip()


def _pick(a: str | None, b: str | None) -> str | None:
    # A total order (real values before blank ones, then by value) keeps merging a semilattice:
    # commutative, associative and idempotent, so delivery order can never change an identity.
    if a is None or a == b:
        return b
    if b is None:
        return a
    return min(a, b, key=lambda v: (_is_blank(v), v))


def merge_identity(a: Identity, b: Identity) -> Identity:
    """Merge two views of one identity, field by field."""
    if a == b:  # the common case (a join and its leave say the same): skip the field-by-field merge
        return a
    return Identity(
        _pick(a.external_user_id, b.external_user_id), _pick(a.email, b.email), _pick(a.name, b.name)
    )


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """Return the earlier of two moments, either of which may be unknown."""
    return b if a is None else a if b is None else min(a, b)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """Return the later of two moments, either of which may be unknown."""
    return b if a is None else a if b is None else max(a, b)


def either(a: bool | None, b: bool | None) -> bool | None:
    """Return whether either of two flags, either of which may be unknown, is set (True wins)."""
    # The greater in None < False < True: commutative, associative and idempotent, like the other merges.
    return b if a is None else a if b is None else a or b


def merge_segment_facts(a: SegmentFacts, b: SegmentFacts) -> SegmentFacts:
    """Merge two partial views of the same participant session."""
    if a.participant_session_id != b.participant_session_id:
        raise ValueError("cannot merge facts of different participant sessions")
    return SegmentFacts(
        a.participant_session_id,
        joined_at=earliest(a.joined_at, b.joined_at),
        left_at=latest(a.left_at, b.left_at),
        identity=merge_identity(a.identity, b.identity),
        is_admin=either(a.is_admin, b.is_admin),
    )


def merge_into(merged: dict[str, SegmentFacts], facts: SegmentFacts) -> None:
    """Merge one view of a participant session into `merged`, keyed by participant session id."""
    known = merged.get(facts.participant_session_id)
    merged[facts.participant_session_id] = facts if known is None else merge_segment_facts(known, facts)


def person_key(identity: Identity, participant_session_id: str) -> tuple[str, str]:
    """Return (participantKey, identifiedBy) from the strongest identity field present."""
    ext, email, name = (
        v.strip() if v else "" for v in (identity.external_user_id, identity.email, identity.name)
    )
    if ext:
        return f"ext:{ext}", "externalUserId"
    if email:
        return f"email:{email.lower()}", "email"
    if name:
        return f"name:{' '.join(name.split())}", "name"
    return f"ps:{participant_session_id}", "participantSession"


def segment_facts_of(facts: DeliveryFacts) -> SegmentFacts | None:
    """Return what a join or leave says about its participant session (None for starts and ends)."""
    if facts.event not in PARTICIPANT_EVENTS:
        return None
    is_join = facts.event == JOIN
    return SegmentFacts(
        # Without an id a join cannot be paired with its leave: each stands alone.
        facts.participant_session_id or f"anonymous:{facts.dedupe_key}",
        joined_at=facts.event_time if is_join else facts.join_time,
        left_at=None if is_join else facts.event_time,
        identity=Identity(facts.external_user_id, facts.email, facts.name),
        is_admin=facts.is_admin,
    )


# What deliveries say about their meeting session itself: its times, its start and its end.


class SessionFacts(Protocol):
    """What deliveries report about a meeting session itself (a MeetingSession, or a scratch copy)."""

    status: str
    earliest_fact_at: datetime | None
    last_delivery_at: datetime | None
    reported_start: datetime | None
    reported_end: datetime | None
    end_received_at: datetime | None


class SessionSummary(NamedTuple):
    """What some deliveries say about their session; None where none of them says anything."""

    earliest_fact_at: datetime | None = None  # the earliest event time of any delivery
    last_delivery_at: datetime | None = None  # the latest time one was received
    reported_start: datetime | None = None  # the earliest start reported
    reported_end: datetime | None = None  # the latest end reported
    end_received_at: datetime | None = None  # when the first end was received: set for every end


SESSION_FACT_NAMES = ("status", *SessionSummary._fields)  # what a SessionFacts holds


def summary_of(facts: DeliveryFacts, received_at: datetime) -> SessionSummary:
    """Return what one delivery says about its session."""
    is_end = facts.event == END
    return SessionSummary(
        earliest_fact_at=facts.event_time,
        last_delivery_at=received_at,
        reported_start=facts.event_time if facts.event == START else None,
        reported_end=facts.event_time if is_end else None,
        end_received_at=received_at if is_end else None,
    )


def combine(a: SessionSummary, b: SessionSummary) -> SessionSummary:
    """Merge what two sets of deliveries say about one session."""
    return SessionSummary(
        earliest(a.earliest_fact_at, b.earliest_fact_at),
        latest(a.last_delivery_at, b.last_delivery_at),
        earliest(a.reported_start, b.reported_start),
        latest(a.reported_end, b.reported_end),
        earliest(a.end_received_at, b.end_received_at),
    )


def merge_summary(meeting: SessionFacts, summary: SessionSummary) -> None:
    """Merge what some deliveries say about a session into it; an end ends a live session.

    An end is known by its end_received_at: every delivery has a received time, so every end sets it.
    """
    meeting.earliest_fact_at = earliest(meeting.earliest_fact_at, summary.earliest_fact_at)
    meeting.last_delivery_at = latest(meeting.last_delivery_at, summary.last_delivery_at)
    meeting.reported_start = earliest(meeting.reported_start, summary.reported_start)
    meeting.reported_end = latest(meeting.reported_end, summary.reported_end)
    meeting.end_received_at = earliest(meeting.end_received_at, summary.end_received_at)
    if summary.end_received_at is not None and meeting.status == SessionStatus.LIVE:
        meeting.status = SessionStatus.ENDED


def apply_session_fact(meeting: SessionFacts, facts: DeliveryFacts, received_at: datetime) -> None:
    """Merge what one delivery says about its meeting session (times, start, end) into the session."""
    merge_summary(meeting, summary_of(facts, received_at))


# When the meeting session started and ended, and where each participant session lies within it.


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


# Per-person attendance and the session's figures.

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
    is_host: bool  # Metered marked one of the person's participant sessions isAdmin


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
    return _ms(segment.joined_at), _FOREVER if segment.left_at is None else _ms(segment.left_at)


def union_ms(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """Return the length in ms of the union of half-open [start, end) intervals."""
    return _covered_ms((_ms(s), _ms(e)) for s, e in intervals)


def count_joins(segments: Iterable[Segment], grace_ms: int) -> int:
    """Count one person's joins; reconnects within the grace and overlapping segments are not joins."""
    return _count_joins_ms(map(_presence_ms, segments), grace_ms)


def peak_concurrency(people: Mapping[str, Sequence[Segment]]) -> int:
    """Return the largest number of distinct people present at one instant."""
    return _peak(_spans(map(_presence_ms, segments)) for segments in people.values())


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
    *,
    is_host: bool,
) -> tuple[PersonAttendance, list[tuple[int, int]]]:
    """Summarise one person's segments in one session; also return their presence spans, in ms."""
    # The spans are what the session's peak needs: each segment's times are turned into milliseconds
    # once, not once for each figure.
    if not segments:
        raise ValueError("a person needs at least one segment")
    ordered = tuple(sorted(segments, key=_segment_order))
    intervals = [_presence_ms(s) for s in ordered]
    started_ms = _ms(bounds.started_at)
    ended_ms = _FOREVER if bounds.ended_at is None else _ms(bounds.ended_at)
    # Clipping in ms is clipping the times: _ms never reverses an order.
    attended_ms = _covered_ms(
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
        join_count=_count_joins_ms(intervals, rules.reconnect_grace_ms),
        present=present,
        inferred=any(s.inferred for s in ordered),
        segments=ordered,
        is_host=is_host,
    )
    return person, _spans(intervals)


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
            identities = [f.identity for f in group]
            is_host = any(f.is_admin for f in group)
            person, spans = person_attendance(key, by, segments, identities, bounds, rules, is_host=is_host)
            attendance.append(person)
        else:  # only their presence counts, for the peak
            spans = _spans(map(_presence_ms, segments))
        spans_per_person.append(spans)
    ended_at = bounds.ended_at
    return SessionResult(
        bounds=bounds,
        duration_seconds=None if ended_at is None else seconds(_ms(ended_at) - _ms(bounds.started_at)),
        participant_count=len(groups),
        peak_concurrency=_peak(spans_per_person),
        attendance=tuple(attendance),
    )
