"""A series of sessions: attendance rates, runs of absences, billable time, and the options they read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.statuses import (
    Expected,
    Judged,
    Status,
    StatusRules,
    absence_alert_after,
    absence_run,
    billable_ms,
    billing_increment,
    series_rate,
)

RULES = StatusRules()
WITH_HOSTS = StatusRules(include_hosts=True)
MINUTE = 60_000


def cell(status: Status, *, on_roster: bool = True, is_host: bool = False) -> Judged:
    return Judged("ext:u-1", status, status, is_host, Expected("ext:u-1") if on_roster else None)


P, L, E, A, X, G = (
    cell(Status.PRESENT),
    cell(Status.LATE),
    cell(Status.LEFT_EARLY),
    cell(Status.ABSENT),
    cell(Status.EXCUSED),
    cell(Status.GUEST, on_roster=False),
)


def test_the_rate_is_present_or_late_over_sessions_expected() -> None:
    assert series_rate([P, L, E, A], RULES) == 0.5


def test_excused_sessions_count_in_neither_part_of_the_rate() -> None:
    assert series_rate([P, X, A, X], RULES) == 0.5


def test_sessions_off_the_roster_are_not_in_the_rate() -> None:
    assert series_rate([None, P, G, A, None], RULES) == 0.5


def test_a_guest_has_no_rate_nor_one_excused_every_time() -> None:
    assert series_rate([G, None, G], RULES) is None
    assert series_rate([X, X], RULES) is None


def test_a_host_is_left_out_of_the_rate_unless_the_room_includes_hosts() -> None:
    hosted = [cell(Status.PRESENT, is_host=True), cell(Status.ABSENT, is_host=True), P]
    assert series_rate(hosted, RULES) == 1.0  # only the session attended as an attendee counts
    assert series_rate(hosted, WITH_HOSTS) == round(2 / 3, 4)


def test_the_run_counts_absences_back_from_the_newest_session() -> None:
    assert absence_run(reversed([P, A, P, A, A]), RULES) == (2, True)
    assert absence_run(reversed([A, A, A]), RULES) == (3, False)  # no older session: it may be longer
    assert absence_run(reversed([A, A, P]), RULES) == (0, True)


def test_excused_sessions_and_sessions_off_the_roster_are_passed_over() -> None:
    assert absence_run(reversed([P, A, X, None, A]), RULES) == (2, True)


@pytest.mark.parametrize("stopper", [P, L, E, G], ids=lambda c: c.status.value)
def test_any_other_status_ends_the_run(stopper: Judged) -> None:
    ends = stopper.on_roster  # a guest is not expected: passed over like a session off the roster
    assert absence_run(reversed([A, stopper, A]), RULES) == ((1, True) if ends else (2, False))


def test_a_host_runs_no_absences_unless_the_room_includes_hosts() -> None:
    hosted = [cell(Status.ABSENT, is_host=True)] * 2
    assert absence_run(hosted, RULES) == (0, False)
    assert absence_run(hosted, WITH_HOSTS) == (2, False)


@given(st.lists(st.sampled_from([P, L, E, A, X, G, None]), max_size=30))
def test_each_new_session_lengthens_ends_or_leaves_the_run(cells: list[Judged | None]) -> None:
    run, ended = absence_run(reversed(cells), RULES)
    assert absence_run(reversed([*cells, A]), RULES) == (run + 1, ended)
    assert absence_run(reversed([*cells, P]), RULES) == (0, True)
    for passed_over in (X, G, None):
        assert absence_run(reversed([*cells, passed_over]), RULES) == (run, ended)


@pytest.mark.parametrize(
    ("attended_ms", "increment", "billed_minutes"),
    [
        (0, 15, 0),  # nothing attended bills nothing
        (1, 15, 15),  # a millisecond starts an increment
        (15 * MINUTE, 15, 15),  # a whole increment is not rounded further
        (15 * MINUTE + 1, 15, 30),
        (61_500, 1, 2),
        (7 * MINUTE, 6, 12),
        (3 * 60 * MINUTE, 1440, 1440),
    ],
)
def test_attended_time_is_rounded_up_to_the_increment(
    attended_ms: int, increment: int, billed_minutes: int
) -> None:
    assert billable_ms(attended_ms, increment) == billed_minutes * MINUTE


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=1440))
def test_billed_time_is_the_least_whole_number_of_increments_covering_it(
    attended: int, increment: int
) -> None:
    billed = billable_ms(attended, increment)
    assert billed % (increment * MINUTE) == 0
    assert attended <= billed < attended + increment * MINUTE


@pytest.mark.parametrize(
    ("options", "increment", "alert_after"),
    [
        ({}, 1, None),
        ({"billingIncrementMinutes": 15, "absenceAlertAfter": 3}, 15, 3),
        ({"billingIncrementMinutes": True, "absenceAlertAfter": 0}, 1, None),  # never stored; read safely
    ],
)
def test_the_options_read_from_the_room(
    options: dict[str, object], increment: int, alert_after: int | None
) -> None:
    assert billing_increment(options) == increment
    assert absence_alert_after(options) == alert_after
