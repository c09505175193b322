"""The attendance maths: hand-worked meetings, then properties over random ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.attendance import (
    AttendanceRules,
    Identity,
    PersonAttendance,
    Segment,
    SegmentFacts,
    SessionBounds,
    SessionResult,
    compute_session,
    count_joins,
    merge_segment_facts,
    peak_concurrency,
    person_attendance,
    person_key,
    resolve_segment,
    seconds,
    session_bounds,
    union_ms,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
GRACE_30S = AttendanceRules(reconnect_grace_ms=30_000, min_attendance_percent=None)
# Twice the profile's count (200 in `make test`, 20 in `make test-pure`'s quick profile), once for whole
# meetings, each example of which is a whole meeting.
PROPERTY = settings(max_examples=2 * settings().max_examples, deadline=None)
WHOLE_MEETINGS = settings(max_examples=settings().max_examples, deadline=None)


def at(minute: int, second: int = 0, ms: int = 0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second, milliseconds=ms)


def join(psid: str, when: datetime, **identity: str) -> SegmentFacts:
    return SegmentFacts(psid, joined_at=when, identity=Identity(**identity))


def leave(psid: str, when: datetime, join_time: datetime | None = None, **identity: str) -> SegmentFacts:
    return SegmentFacts(psid, joined_at=join_time, left_at=when, identity=Identity(**identity))


def hour_meeting(*facts: SegmentFacts, rules: AttendanceRules = GRACE_30S) -> SessionResult:
    return compute_session(at(0), at(60), facts, rules)


def by_key(result: SessionResult) -> dict[str, PersonAttendance]:
    return {person.participant_key: person for person in result.attendance}


# --- hand-worked meetings (10:00 start, 11:00 end, 30 s grace unless a test says otherwise) ---


def test_two_devices_at_once_count_once() -> None:
    # Phone 10:00-10:40, laptop 10:20-11:00: the union is 10:00-11:00 = 3600 s, 100 %, one join, peak 1.
    result = compute_session(
        at(0),
        at(60),
        [
            join("phone", at(0), external_user_id="u1"),
            leave("phone", at(40), external_user_id="u1"),
            join("laptop", at(20), external_user_id="u1"),
            leave("laptop", at(60), external_user_id="u1"),
        ],
        GRACE_30S,
    )
    (ann,) = result.attendance
    assert (ann.attended_seconds, ann.attendance_percent, ann.join_count) == (3600.0, 100.0, 1)
    assert (result.participant_count, result.peak_concurrency) == (1, 1)


def test_reconnect_within_grace_is_not_a_join() -> None:
    # 10:00-10:10 then 10:10:20-10:30: a 20 s gap < 30 s. Attended 600 + 1180 = 1780 s.
    facts = [
        join("a", at(0), name="Ann"),
        leave("a", at(10)),
        join("b", at(10, 20), name="Ann"),
        leave("b", at(30)),
    ]
    ann = by_key(hour_meeting(*facts))["name:Ann"]
    assert ann.join_count == 1
    assert ann.attended_seconds == 1780.0


def test_reconnect_at_or_beyond_grace_is_a_join() -> None:
    # Gaps of exactly 30 s (not "less than" the grace) and of 5 min: three joins.
    # Attended 10:00-10:10 (600) + 10:10:30-10:20 (570) + 10:25-10:30 (300) = 1470 s.
    facts = [
        *(join(psid, when, name="Ann") for psid, when in [("a", at(0)), ("b", at(10, 30)), ("c", at(25))]),
        *(leave(psid, when) for psid, when in [("a", at(10)), ("b", at(20)), ("c", at(30))]),
    ]
    ann = by_key(hour_meeting(*facts))["name:Ann"]
    assert ann.join_count == 3
    assert ann.attended_seconds == 1470.0


def test_leave_that_never_came_is_closed_at_the_end() -> None:
    # Joined 10:15, no leave: closed at 11:00 (inferred), 2700 s of 3600 = 75.0 %.
    ann = by_key(hour_meeting(join("a", at(15), email="ann@x.com")))["email:ann@x.com"]
    assert ann.segments == (Segment("a", at(15), at(60), inferred=True),)
    assert (ann.attended_seconds, ann.attendance_percent, ann.last_left_at) == (2700.0, 75.0, at(60))
    assert ann.inferred


def test_missing_join_taken_from_the_leaves_join_time() -> None:
    # Only a leave at 10:50 carrying joinTime 10:20: both bounds reported, 1800 s, 50.0 %.
    ann = by_key(hour_meeting(leave("a", at(50), join_time=at(20), name="Ann")))["name:Ann"]
    assert ann.segments == (Segment("a", at(20), at(50), inferred=False),)
    assert (ann.attended_seconds, ann.attendance_percent, ann.inferred) == (1800.0, 50.0, False)


def test_missing_join_without_join_time_starts_at_session_start() -> None:
    # Only a leave at 10:30: the session start (10:00) stands in, 1800 s, inferred.
    ann = by_key(hour_meeting(leave("a", at(30), name="Ann")))["name:Ann"]
    assert ann.segments == (Segment("a", at(0), at(30), inferred=True),)
    assert ann.attended_seconds == 1800.0


def test_leave_reported_before_its_join_is_empty() -> None:
    # Join 10:30, leave 10:20: the segment collapses to 10:30-10:30, 0 s; still one join, not present.
    ann = by_key(hour_meeting(join("a", at(30), name="Ann"), leave("a", at(20), name="Ann")))["name:Ann"]
    assert ann.segments == (Segment("a", at(30), at(30), inferred=False),)
    assert (ann.attended_seconds, ann.attendance_percent, ann.join_count, ann.present) == (0.0, 0.0, 1, False)


def test_no_start_webhook_starts_at_the_earliest_join() -> None:
    # Joins 10:05 and 10:15, end 11:00: 55 min = 3300 s. Ann 10:05-10:45 = 2400 s -> 72.727 -> 72.7 %.
    result = compute_session(
        None,
        at(60),
        [join("a", at(5), name="Ann"), leave("a", at(45)), join("b", at(15), name="Bob"), leave("b", at(55))],
        GRACE_30S,
    )
    assert result.bounds == SessionBounds(at(5), at(60), start_inferred=True, end_inferred=False)
    assert result.duration_seconds == 3300.0
    assert result.attendance[0].attendance_percent == 72.7


def test_sweeper_closes_at_the_latest_leave() -> None:
    # Leaves at 10:40 and 10:50, Cy never left: ended 10:50 (inferred), 3000 s.
    # Cy 10:20-10:50 = 1800 s -> 60.0 %, inferred.
    result = compute_session(
        at(0),
        None,
        [
            join("a", at(0), name="Ann"),
            leave("a", at(40)),
            join("b", at(10), name="Bob"),
            leave("b", at(50)),
            join("c", at(20), name="Cy"),
        ],
        GRACE_30S,
        closed_by_sweeper=True,
    )
    assert result.bounds == SessionBounds(at(0), at(50), start_inferred=False, end_inferred=True)
    assert result.duration_seconds == 3000.0
    cy = {p.participant_key: p for p in result.attendance}["name:Cy"]
    assert (cy.attended_seconds, cy.attendance_percent, cy.inferred) == (1800.0, 60.0, True)


def test_live_session_leaves_segments_open() -> None:
    # Ann 10:00-10:30 then rejoined 10:40 (open); Bob joined 10:10 (open). No end yet.
    # Ann: 1800 s closed, 2 joins, no percent; peak 2 (10:10-10:30 and from 10:40).
    result = compute_session(
        at(0),
        None,
        [
            join("a1", at(0), name="Ann"),
            leave("a1", at(30)),
            join("a2", at(40), name="Ann"),
            join("b", at(10), name="Bob"),
        ],
        GRACE_30S,
    )
    ann, bob = result.attendance
    assert (result.bounds.ended_at, result.duration_seconds, result.peak_concurrency) == (None, None, 2)
    assert ann.segments[-1] == Segment("a2", at(40), None, inferred=False)
    assert (ann.attended_seconds, ann.join_count, ann.last_left_at) == (1800.0, 2, None)
    assert (ann.attendance_percent, ann.present, ann.inferred) == (None, None, False)
    assert (bob.attended_seconds, bob.present) == (0.0, None)


def test_person_keyed_by_external_user_id_first() -> None:
    identity = Identity(external_user_id="u-42", email="Ann@X.com", name="Ann")
    assert person_key(identity, "ps1") == ("ext:u-42", "externalUserId")


def test_person_keyed_by_lower_cased_email_across_sessions() -> None:
    # "A@X.com" and "a@x.com" are one person: 10:00-10:20 + 10:40-11:00 = 2400 s, two joins.
    facts = [
        join("a", at(0), email="A@X.com"),
        leave("a", at(20)),
        join("b", at(40), email="a@x.com "),
        leave("b", at(60)),
    ]
    result = hour_meeting(*facts)
    (person,) = result.attendance
    assert (person.participant_key, person.identified_by) == ("email:a@x.com", "email")
    assert person.email == "A@X.com"  # the smallest reported spelling, whatever the delivery order
    assert (person.attended_seconds, person.join_count, len(person.segments)) == (2400.0, 2, 2)


def test_person_keyed_by_display_name_with_whitespace_collapsed() -> None:
    assert person_key(Identity(email="  ", name="  Ann   Lee "), "ps1") == ("name:Ann Lee", "name")
    assert person_key(Identity(name="ann lee"), "ps1") == ("name:ann lee", "name")  # case is kept


def test_person_keyed_by_participant_session_when_nothing_else() -> None:
    assert person_key(Identity(external_user_id=" ", email="", name=None), "ps1") == (
        "ps:ps1",
        "participantSession",
    )


def test_identity_upgrade_from_the_leave_keys_the_person_by_external_id() -> None:
    # Join says only "Ann", the leave adds externalUserId u1; a second device reports only u1.
    facts = [
        join("a", at(0), name="Ann"),
        leave("a", at(30), external_user_id="u1"),
        join("b", at(20), external_user_id="u1"),
        leave("b", at(50)),
    ]
    (ann,) = hour_meeting(*facts).attendance
    assert ann.participant_key == "ext:u1"
    assert (ann.identified_by, ann.name, ann.external_user_id) == ("externalUserId", "Ann", "u1")
    assert ann.attended_seconds == 3000.0  # 10:00-10:50


def test_present_against_the_threshold() -> None:
    # 50 % needed of 3600 s. Ann 1800 s = 50.0 (exactly at it); Bob 1797 s = 49.9; Cy 1799.9 s = 49.997
    # which is shown as 50.0, and present compares the percent as shown.
    rules = AttendanceRules(reconnect_grace_ms=30_000, min_attendance_percent=50.0)
    facts = [
        join("a", at(0), name="Ann"),
        leave("a", at(30)),
        join("b", at(0), name="Bob"),
        leave("b", at(29, 57)),
        join("c", at(0), name="Cy"),
        leave("c", at(29, 59, 900)),
    ]
    people = by_key(hour_meeting(*facts, rules=rules))
    assert (people["name:Ann"].attendance_percent, people["name:Ann"].present) == (50.0, True)
    assert (people["name:Bob"].attendance_percent, people["name:Bob"].present) == (49.9, False)
    assert (people["name:Cy"].attendance_percent, people["name:Cy"].present) == (50.0, True)


@pytest.mark.parametrize(
    ("attended_ms", "duration_ms", "percent"),
    [
        (600_000, 1_800_000, 33.3),  # 1/3 = 33.333...
        (1_200_000, 1_800_000, 66.7),  # 2/3 = 66.666...
        (1_000, 2_000_000, 0.1),  # 0.05 exactly rounds half up
        (5_000, 2_000_000, 0.3),  # 0.25: half up, not Python's round-half-even (0.2)
        (3_000, 2_000_000, 0.2),  # 0.15: float 0.15 is 0.1499..., the integer maths is not fooled
        (0, 0, 0.0),  # a zero-length session
    ],
)
def test_percent_rounds_half_up_to_one_decimal(attended_ms: int, duration_ms: int, percent: float) -> None:
    start = at(0)
    bounds = SessionBounds(start, start + timedelta(milliseconds=duration_ms), False, False)
    segment = Segment("a", start, start + timedelta(milliseconds=attended_ms), inferred=False)
    ann = [Identity(name="Ann")]
    result, _ = person_attendance("name:Ann", "name", [segment], ann, bounds, GRACE_30S, is_host=False)
    assert result.attendance_percent == percent


def test_a_person_is_host_when_any_of_their_participant_sessions_says_isadmin() -> None:
    # Ann's laptop join says isAdmin, its leave says not; her phone says nothing. Bob says false; Cy nothing.
    result = hour_meeting(
        join("a1", at(0), name="Ann")._replace(is_admin=True),
        leave("a1", at(30))._replace(is_admin=False),
        join("a2", at(10), name="Ann"),
        join("b", at(0), name="Bob")._replace(is_admin=False),
        join("c", at(0), name="Cy"),
    )
    assert {key: person.is_host for key, person in by_key(result).items()} == {
        "name:Ann": True,
        "name:Bob": False,
        "name:Cy": False,
    }


def test_peak_counts_one_person_on_two_devices_once() -> None:
    ann = [Segment("a1", at(0), at(30), False), Segment("a2", at(10), at(40), False)]
    assert peak_concurrency({"ann": ann}) == 1


def test_peak_leave_and_join_at_the_same_instant_do_not_overlap() -> None:
    # Ann leaves at 10:30 as Bob joins: never two at once.
    people = {"ann": [Segment("a", at(0), at(30), False)], "bob": [Segment("b", at(30), at(60), False)]}
    assert peak_concurrency(people) == 1


def test_peak_ignores_empty_segments_and_counts_open_ones() -> None:
    # Cy's 10:10-10:10 counts nothing; Ann (open from 10:00) and Bob (10:20-10:30) overlap: 2.
    people = {
        "ann": [Segment("a", at(0), None, False)],
        "bob": [Segment("b", at(20), at(30), False)],
        "cy": [Segment("c", at(10), at(10), False)],
    }
    assert peak_concurrency(people) == 2
    assert peak_concurrency({}) == 0


def test_segments_outside_the_bounds_are_clipped_not_inferred() -> None:
    # Reported 09:50-11:10 in a 10:00-11:00 session: clipped to 10:00-11:00, 3600 s, reported times.
    ann = by_key(hour_meeting(join("a", at(-10), name="Ann"), leave("a", at(70))))["name:Ann"]
    assert ann.segments == (Segment("a", at(0), at(60), inferred=False),)
    assert (ann.attended_seconds, ann.attendance_percent) == (3600.0, 100.0)


def test_resolve_segment_after_the_end_collapses_at_the_end() -> None:
    bounds = SessionBounds(at(0), at(60), False, False)
    assert resolve_segment(join("a", at(70)), bounds) == Segment("a", at(60), at(60), inferred=True)


def test_bounds_fall_back_to_the_callers_earliest_fact() -> None:
    # No start webhook and no join time: the caller's earliest fact (09:58) is the start.
    bounds = session_bounds(None, None, [leave("a", at(30))], fallback_start=at(-2))
    assert bounds == SessionBounds(at(-2), None, start_inferred=True, end_inferred=False)


def test_bounds_without_any_start_is_an_error() -> None:
    with pytest.raises(ValueError, match="no start"):
        session_bounds(None, at(60), [leave("a", at(30))])


def test_bounds_never_end_before_they_start() -> None:
    bounds = session_bounds(at(10), at(5), [])
    assert bounds.ended_at == at(10)


def test_merging_different_participant_sessions_is_an_error() -> None:
    with pytest.raises(ValueError, match="different participant sessions"):
        merge_segment_facts(join("a", at(0)), join("b", at(0)))


def test_union_ms_counts_overlaps_once_and_gaps_as_zero() -> None:
    # 10:00-10:30 and 10:20-10:40 -> 40 min; 10:50-11:00 -> 10 min; an empty and a reversed one -> 0.
    intervals = [(at(0), at(30)), (at(20), at(40)), (at(50), at(60)), (at(45), at(45)), (at(59), at(58))]
    assert union_ms(intervals) == 50 * 60_000


def test_count_joins_sorts_by_join_and_treats_overlap_as_one() -> None:
    # Given out of order: 10:20-10:25 overlaps 10:00-10:30 (not a join); 10:30:10 is within 30 s of
    # 10:30 (a reconnect); 10:45 is a join. Two joins.
    segments = [
        Segment("d", at(45), at(50), False),
        Segment("b", at(20), at(25), False),
        Segment("c", at(30, 10), at(40), False),
        Segment("a", at(0), at(30), False),
    ]
    assert count_joins(segments, 30_000) == 2
    assert count_joins(segments, 0) == 3  # with no grace the 10 s gap is a new join


def test_seconds_rounds_milliseconds() -> None:
    assert (seconds(1234), seconds(0), seconds(1_799_900)) == (1.234, 0.0, 1799.9)


# --- properties over random meetings ---

Meeting = tuple[datetime | None, datetime | None, bool, list[SegmentFacts]]  # start, end, swept, facts

moments = st.one_of(
    st.integers(0, 24).map(lambda k: at(5 * k)),  # coarse: plenty of ties
    st.integers(0, 7_200_000).map(lambda ms: T0 + timedelta(milliseconds=ms)),
)
texts = {
    "external_user_id": st.sampled_from([None, "", " ", "u1", "u2"]),
    "email": st.sampled_from([None, "", "a@x.com", "A@X.com", "b@x.com"]),
    "name": st.sampled_from([None, "  ", "Ann", "Ann  Lee", "Bob"]),
}
identities = st.builds(Identity, **texts)
admin_flags = st.sampled_from([None, False, True])
rules = st.builds(
    AttendanceRules,
    reconnect_grace_ms=st.sampled_from([0, 30_000, 600_000]),
    min_attendance_percent=st.sampled_from([None, 0.0, 50.0, 75.5]),
)


@st.composite
def participant_session_views(draw: st.DrawFn, psid: str, who: Identity) -> list[SegmentFacts]:
    """Split one participant session into the views its join and leave deliveries give."""
    joined = draw(moments)
    left = draw(
        st.one_of(moments, st.integers(0, 3_600_000).map(lambda d: joined + timedelta(milliseconds=d)))
    )
    has_join, has_leave = draw(st.sampled_from([(True, True), (True, False), (False, True)]))
    leave_has_join_time = draw(st.booleans())
    identity_on = draw(st.sampled_from(["join", "leave", "both"]))
    views = []
    if has_join:
        identity = who if identity_on != "leave" else Identity()
        views.append(SegmentFacts(psid, joined, None, identity, draw(admin_flags)))
    if has_leave:
        leave_identity = who if identity_on != "join" or not has_join else Identity()
        leave_join = joined if leave_has_join_time else None
        views.append(SegmentFacts(psid, leave_join, left, leave_identity, draw(admin_flags)))
    return views


@st.composite
def meetings(draw: st.DrawFn) -> Meeting:
    views: list[SegmentFacts] = []
    for person in range(draw(st.integers(1, 8))):
        who = draw(identities)
        for n in range(draw(st.integers(1, 4))):
            views += draw(participant_session_views(f"p{person}-{n}", who))
    return draw(st.none() | moments), draw(st.none() | moments), draw(st.booleans()), views


def run(meeting: Meeting, rule: AttendanceRules, views: list[SegmentFacts] | None = None) -> SessionResult:
    start, end, sweeper, facts = meeting
    return compute_session(
        start, end, facts if views is None else views, rule, closed_by_sweeper=sweeper, fallback_start=at(-1)
    )


@WHOLE_MEETINGS
@given(meeting=meetings(), rule=rules, data=st.data())
def test_result_depends_only_on_the_set_of_facts(
    meeting: Meeting, rule: AttendanceRules, data: st.DataObject
) -> None:
    views = meeting[3]
    extra = data.draw(st.lists(st.integers(0, len(views) - 1), max_size=len(views)), label="duplicates")
    order = data.draw(st.permutations([*range(len(views)), *extra]), label="delivery order")
    assert run(meeting, rule, [views[i] for i in order]) == run(meeting, rule)


@WHOLE_MEETINGS
@given(meeting=meetings(), rule=rules)
def test_results_stay_within_their_bounds(meeting: Meeting, rule: AttendanceRules) -> None:
    result = run(meeting, rule)
    bounds = result.bounds
    assert result.peak_concurrency <= result.participant_count == len(result.attendance)
    assert sum(len(p.segments) for p in result.attendance) == len(
        {f.participant_session_id for f in meeting[3]}
    )
    for person in result.attendance:
        assert 1 <= person.join_count <= len(person.segments)
        for segment in person.segments:
            assert bounds.started_at <= segment.joined_at
            if bounds.ended_at is None:
                assert segment.left_at is None or segment.joined_at <= segment.left_at
            else:
                assert segment.left_at is not None and segment.joined_at <= segment.left_at <= bounds.ended_at
        if result.duration_seconds is None:
            assert (person.attendance_percent, person.present) == (None, None)
        else:
            assert person.attended_seconds <= result.duration_seconds
            assert person.attendance_percent is not None and 0.0 <= person.attendance_percent <= 100.0


facts_of_one_session = st.builds(
    SegmentFacts, st.just("ps1"), st.none() | moments, st.none() | moments, identities, admin_flags
)


@PROPERTY
@given(a=facts_of_one_session, b=facts_of_one_session, c=facts_of_one_session)
def test_merge_is_commutative_associative_and_idempotent(
    a: SegmentFacts, b: SegmentFacts, c: SegmentFacts
) -> None:
    merge = merge_segment_facts
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a


def segment_in_minutes(joined: int, left: int | None) -> Segment:
    return Segment("x", at(joined), None if left is None else at(max(joined, left)), inferred=False)


segment_lists = st.lists(
    st.builds(segment_in_minutes, st.integers(0, 60), st.none() | st.integers(0, 60)), min_size=1, max_size=4
)
people_segments = st.dictionaries(st.sampled_from(["ann", "bob", "cy", "di", "ed"]), segment_lists)


@PROPERTY
@given(people=people_segments)
def test_peak_matches_counting_at_every_join(people: dict[str, list[Segment]]) -> None:
    # Presence only rises at a join, so the peak is the most people present at some join instant.
    def present_at(moment: datetime, segments: list[Segment]) -> bool:
        return any(s.joined_at <= moment and (s.left_at is None or moment < s.left_at) for s in segments)

    joins = [s.joined_at for segments in people.values() for s in segments]
    expected = max((sum(present_at(t, segs) for segs in people.values()) for t in joins), default=0)
    assert peak_concurrency(people) == expected


@PROPERTY
@given(spans=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 600)), max_size=8))
def test_union_matches_counting_covered_seconds(spans: list[tuple[int, int]]) -> None:
    covered = {second for start, end in spans for second in range(start, end)}
    intervals = [(T0 + timedelta(seconds=s), T0 + timedelta(seconds=e)) for s, e in spans]
    assert union_ms(intervals) == len(covered) * 1000


@PROPERTY
@given(segments=segment_lists, grace=st.integers(0, 3_600_000), data=st.data())
def test_join_count_is_order_free_and_bounded(
    segments: list[Segment], grace: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(segments))
    assert 1 <= count_joins(segments, grace) == count_joins(shuffled, grace) <= len(segments)
