"""A series of sessions: attendance rates, runs of absences, billable time, and the options they read."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.statuses import (
    Expected,
    Judged,
    Status,
    absence_alert_after,
    absence_run,
    attendance_rate,
    billable_ms,
    billing_increment,
)

MINUTE = 60_000


def cell(status: Status, *, on_roster: bool = True, is_host: bool = False, counted: bool = True) -> Judged:
    member = Expected("ext:u-1") if on_roster else None
    return Judged("ext:u-1", status, status, is_host, member, attended=None, counted=counted)


def run_of(cells_newest_first: Iterable[Judged | None]) -> tuple[int, bool]:
    found = absence_run(cells_newest_first)
    return found.length, found.ended


P, L, E, A, X, G = (
    cell(Status.PRESENT),
    cell(Status.LATE),
    cell(Status.LEFT_EARLY),
    cell(Status.ABSENT),
    cell(Status.EXCUSED),
    cell(Status.GUEST, on_roster=False),
)


def test_the_rate_is_present_or_late_over_sessions_expected() -> None:
    assert attendance_rate([P, L, E, A]) == 0.5


def test_excused_sessions_count_in_neither_part_of_the_rate() -> None:
    assert attendance_rate([P, X, A, X]) == 0.5


def test_sessions_off_the_roster_are_not_in_the_rate() -> None:
    assert attendance_rate([None, P, G, A, None]) == 0.5


def test_a_guest_has_no_rate_nor_one_excused_every_time() -> None:
    assert attendance_rate([G, None, G]) is None
    assert attendance_rate([X, X]) is None


def test_a_host_is_left_out_of_the_rate_where_the_session_leaves_hosts_out() -> None:
    left_out = [
        cell(Status.PRESENT, is_host=True, counted=False),
        cell(Status.ABSENT, is_host=True, counted=False),
    ]
    assert attendance_rate([*left_out, P]) == 1.0  # only the session attended as an attendee counts
    included = [cell(Status.PRESENT, is_host=True), cell(Status.ABSENT, is_host=True)]
    assert attendance_rate([*included, P]) == round(2 / 3, 4)
    # Each session by its own stamp: a room that began including hosts changes only its later sessions.
    assert attendance_rate([left_out[1], included[0]]) == 1.0


def test_the_run_counts_absences_back_from_the_newest_session() -> None:
    assert run_of(reversed([P, A, P, A, A])) == (2, True)
    assert run_of(reversed([A, A, A])) == (3, False)  # no older session: it may be longer
    assert run_of(reversed([A, A, P])) == (0, True)


def test_excused_sessions_and_sessions_off_the_roster_are_passed_over() -> None:
    assert run_of(reversed([P, A, X, None, A])) == (2, True)


@pytest.mark.parametrize("stopper", [P, L, E, G], ids=lambda c: c.status.value)
def test_any_other_status_ends_the_run(stopper: Judged) -> None:
    ends = stopper.on_roster  # a guest is not expected: passed over like a session off the roster
    assert run_of(reversed([A, stopper, A])) == ((1, True) if ends else (2, False))


def test_a_host_runs_no_absences_where_the_sessions_leave_hosts_out() -> None:
    assert run_of([cell(Status.ABSENT, is_host=True, counted=False)] * 2) == (0, False)
    assert run_of([cell(Status.ABSENT, is_host=True)] * 2) == (2, False)


def test_a_run_is_known_by_its_oldest_absence() -> None:
    assert absence_run(reversed([P, A, X, None, A])).first == 3  # newest first: the A just after the P
    assert absence_run(reversed([A, A, A])).first == 2
    assert absence_run(reversed([A, P])).first is None


@given(st.lists(st.sampled_from([P, L, E, A, X, G, None]), max_size=30))
def test_each_new_session_lengthens_ends_or_leaves_the_run(cells: list[Judged | None]) -> None:
    run, ended = run_of(reversed(cells))
    assert run_of(reversed([*cells, A])) == (run + 1, ended)
    assert run_of(reversed([*cells, P])) == (0, True)
    for passed_over in (X, G, None):
        assert run_of(reversed([*cells, passed_over])) == (run, ended)


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
