"""The status rule: hand-worked sessions, then properties over random rosters and attendance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.statuses import (
    OVERRIDABLE,
    Attended,
    Expected,
    Judged,
    Override,
    Status,
    StatusRules,
    judge,
    rules_of,
    tally,
)

T0 = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)
END = T0 + timedelta(minutes=60)
RULES = StatusRules(late_after_seconds=300, early_leave_seconds=600)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def came(key: str, joined: float, left: float | None, is_host: bool = False) -> Attended:
    return Attended(key, at(joined), None if left is None else at(left), is_host)


def by_key(judged: list[Judged]) -> dict[str, Status]:
    return {person.participant_key: person.status for person in judged}


# --- hand-worked sessions (14:00 to 15:00; late after 5 minutes, early more than 10 before the end) ---


def test_each_computed_status() -> None:
    roster = [Expected(f"ext:{name}") for name in ("ann", "bob", "cy", "di", "ed", "flo")]
    attended = [
        came("ext:ann", 0, 60),
        came("ext:bob", 5, 60),  # exactly 5 minutes in: not late yet
        came("ext:cy", 5.01, 60),  # late
        came("ext:di", 0, 50),  # exactly 10 minutes before the end: not early
        came("ext:ed", 0, 49.99),  # left early
        came("email:guest@x.io", 30, 40),  # not on the roster
    ]
    judged = judge(T0, END, attended, roster, {}, RULES)
    assert by_key(judged) == {
        "ext:ann": Status.PRESENT,
        "ext:bob": Status.PRESENT,
        "ext:cy": Status.LATE,
        "ext:di": Status.PRESENT,
        "ext:ed": Status.LEFT_EARLY,
        "email:guest@x.io": Status.GUEST,
        "ext:flo": Status.ABSENT,
    }
    # Those who came first, in the order given, then the absent.
    assert [person.participant_key for person in judged][-1] == "ext:flo"


def test_late_wins_over_left_early() -> None:
    judged = judge(T0, END, [came("ext:ann", 20, 30)], [Expected("ext:ann")], {}, RULES)
    assert by_key(judged) == {"ext:ann": Status.LATE}


def test_without_rules_everyone_who_came_is_present() -> None:
    judged = judge(T0, END, [came("ext:ann", 20, 30)], [Expected("ext:ann")], {}, StatusRules())
    assert by_key(judged) == {"ext:ann": Status.PRESENT}


def test_nobody_leaves_early_from_a_live_session() -> None:
    # Still live (no end): a leave is not early yet, and someone still there has no last leave.
    attended = [came("ext:ann", 0, 10), came("ext:bob", 0, None)]
    judged = judge(T0, None, attended, [Expected("ext:ann"), Expected("ext:bob")], {}, RULES)
    assert by_key(judged) == {"ext:ann": Status.PRESENT, "ext:bob": Status.PRESENT}


def test_an_override_replaces_the_computed_status_and_keeps_it() -> None:
    excused = Override(Status.EXCUSED, "doctor's appointment", "api", at(90))
    by_phone = Override(Status.PRESENT, "joined by phone", "cli:ann", at(91))
    overrides = {"ext:bob": excused, "ext:cy": by_phone, "ext:gone": excused}
    roster = [Expected("ext:bob"), Expected("ext:cy")]
    judged = {j.participant_key: j for j in judge(T0, END, [], roster, overrides, RULES)}
    assert (judged["ext:bob"].status, judged["ext:bob"].computed) == (Status.EXCUSED, Status.ABSENT)
    assert (judged["ext:cy"].status, judged["ext:cy"].override) == (Status.PRESENT, by_phone)
    # Kept even for someone neither there nor on the roster any more: an organizer's word is never lost.
    assert (judged["ext:gone"].status, judged["ext:gone"].on_roster) == (Status.EXCUSED, False)


def test_a_host_is_one_whom_metered_marked_or_the_roster_names() -> None:
    roster = [Expected("ext:teacher", is_host=True), Expected("ext:ann"), Expected("ext:bob")]
    attended = [came("ext:teacher", 0, 60), came("ext:admin", 0, 60, is_host=True), came("ext:ann", 0, 60)]
    judged = judge(T0, END, attended, roster, {}, RULES)
    assert {j.participant_key for j in judged if j.is_host} == {"ext:teacher", "ext:admin"}


def test_tally_leaves_hosts_out_unless_the_rules_include_them() -> None:
    roster = [Expected("ext:teacher", is_host=True), Expected("ext:ann"), Expected("ext:bob")]
    attended = [came("ext:teacher", 0, 60), came("ext:admin", 0, 60, is_host=True), came("ext:ann", 0, 60)]
    judged = judge(T0, END, attended, roster, {}, RULES)
    without = tally(judged)
    assert (without.expected, without.attended, without.rate) == (2, 1, 0.5)
    assert (without.counts[Status.PRESENT], without.counts[Status.GUEST], without.counts[Status.ABSENT]) == (
        1,
        0,
        1,
    )
    hosts_in = StatusRules(300, 600, include_hosts=True)
    within = tally(judge(T0, END, attended, roster, {}, hosts_in))
    assert (within.expected, within.attended, within.rate) == (3, 2, 0.6667)
    assert (within.counts[Status.PRESENT], within.counts[Status.GUEST]) == (2, 1)


def test_an_excused_member_counts_in_neither_part_of_the_session_rate() -> None:
    roster = [Expected("ext:ann"), Expected("ext:bob"), Expected("ext:cy")]
    excused = {"ext:bob": Override(Status.EXCUSED, "ill", "api", at(90))}
    result = tally(judge(T0, END, [came("ext:ann", 0, 60)], roster, excused, RULES))
    # ann came, bob is excused, cy is absent: 1 ÷ (3 - 1), as a series counts it; all three expected.
    assert (result.expected, result.attended, result.rate) == (3, 1, 0.5)


def test_tally_without_a_roster_has_no_rate() -> None:
    result = tally(judge(T0, END, [came("ext:ann", 0, 60)], [], {}, RULES))
    assert (result.expected, result.attended, result.rate) == (0, 0, None)
    assert result.counts[Status.GUEST] == 1


def test_overridable_statuses_leave_guest_out() -> None:
    assert set(OVERRIDABLE) == set(Status) - {Status.GUEST}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, StatusRules()),
        (
            {"lateAfterSeconds": 60, "earlyLeaveSeconds": 0, "includeHostsInAttendance": True},
            StatusRules(60, 0, include_hosts=True),
        ),
        # Stored options are validated when set; anything else here is left out, not guessed at.
        ({"lateAfterSeconds": True, "earlyLeaveSeconds": "60", "includeHostsInAttendance": 1}, StatusRules()),
    ],
)
def test_rules_of_reads_the_room_options(options: dict[str, object], expected: StatusRules) -> None:
    assert rules_of(options) == expected


# --- properties over random sessions ---

KEYS = [f"ext:u{n}" for n in range(8)]
minutes = st.integers(0, 70).map(float)
attendances = st.dictionaries(
    st.sampled_from(KEYS),
    st.tuples(minutes, st.none() | minutes, st.booleans()),
    max_size=8,
).map(lambda people: [came(key, joined, left, host) for key, (joined, left, host) in people.items()])
rosters = st.dictionaries(st.sampled_from(KEYS), st.booleans(), max_size=8).map(
    lambda members: [Expected(key, is_host=host) for key, host in members.items()]
)
overrides = st.dictionaries(
    st.sampled_from(KEYS),
    st.sampled_from(OVERRIDABLE).map(lambda status: Override(status, None, "api", at(90))),
    max_size=3,
)
rules = st.builds(
    StatusRules,
    st.none() | st.integers(0, 1200),
    st.none() | st.integers(0, 1200),
    st.booleans(),
)
PROPERTY = settings(deadline=None)


@PROPERTY
@given(attended=attendances, roster=rosters, overridden=overrides, rule=rules, data=st.data())
def test_judging_depends_only_on_the_sets_given(
    attended: list[Attended],
    roster: list[Expected],
    overridden: dict[str, Override],
    rule: StatusRules,
    data: st.DataObject,
) -> None:
    judged = judge(T0, END, attended, roster, overridden, rule)
    shuffled = judge(
        T0, END, data.draw(st.permutations(attended)), data.draw(st.permutations(roster)), overridden, rule
    )
    assert sorted(judged, key=lambda j: j.participant_key) == sorted(
        shuffled, key=lambda j: j.participant_key
    )


@PROPERTY
@given(attended=attendances, roster=rosters, overridden=overrides, rule=rules)
def test_everyone_is_judged_once_and_counted_once(
    attended: list[Attended], roster: list[Expected], overridden: dict[str, Override], rule: StatusRules
) -> None:
    judged = judge(T0, END, attended, roster, overridden, rule)
    keys = [j.participant_key for j in judged]
    assert sorted(keys) == sorted(
        {*(a.participant_key for a in attended), *(m.participant_key for m in roster), *overridden}
    )
    came_keys = {a.participant_key for a in attended}
    for person in judged:
        assert person.status == (
            overridden[person.participant_key].status
            if person.participant_key in overridden
            else person.computed
        )
        assert (person.computed == Status.ABSENT) == (person.participant_key not in came_keys)
        assert (person.computed == Status.GUEST) == (
            person.participant_key in came_keys and not person.on_roster
        )
    result = tally(judged)
    counted = [j for j in judged if rule.include_hosts or not j.is_host]
    assert sum(result.counts.values()) == len(counted)
    assert result.expected == sum(j.on_roster for j in counted)
    assert 0 <= result.attended <= result.expected
    held = sum(j.on_roster and j.status != Status.EXCUSED for j in counted)  # excused: in neither part
    assert (result.rate is None) == (held == 0)
    assert result.rate is None or result.rate == round(result.attended / held, 4)
