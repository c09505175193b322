"""The room timeline: which meeting a delivery that names none belongs to, from the room's starts and ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from workers.deliveries.parsing import END, JOIN, LEAVE, START
from workers.meetings import Mark, Timeline, position

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def meeting_of(timeline: Timeline, minutes: float, event: str = JOIN) -> str:
    return timeline.meeting_at(position(event, at(minutes)))


def test_no_marks_put_everything_in_one_meeting() -> None:
    timeline = Timeline(7, [])
    assert {meeting_of(timeline, m) for m in (0, 60, 6000)} == {"room-7-first"}


def test_two_unnamed_meetings_are_told_apart_by_their_starts_and_ends() -> None:
    timeline = Timeline(7, [Mark(START, at(0)), Mark(END, at(30)), Mark(START, at(60)), Mark(END, at(90))])
    assert meeting_of(timeline, 0, START) == meeting_of(timeline, 10) == meeting_of(timeline, 30, END)
    assert meeting_of(timeline, 10) == "room-7-20260302T090000.000Z"
    assert meeting_of(timeline, 60, START) == meeting_of(timeline, 75) == "room-7-20260302T100000.000Z"
    # Between the two meetings, and after the last: stretches of their own.
    assert meeting_of(timeline, 45) == "room-7-after-20260302T093000.000Z"
    assert meeting_of(timeline, -5) == "room-7-first"


def test_at_the_very_ms_of_an_end_and_a_start_leaves_go_with_the_end_and_joins_with_the_start() -> None:
    timeline = Timeline(7, [Mark(START, at(0)), Mark(END, at(60)), Mark(START, at(60)), Mark(END, at(120))])
    ending, starting = meeting_of(timeline, 30), meeting_of(timeline, 90)
    assert ending != starting
    assert meeting_of(timeline, 60, LEAVE) == meeting_of(timeline, 60, END) == ending
    assert meeting_of(timeline, 60, JOIN) == meeting_of(timeline, 60, START) == starting


def test_a_named_start_names_its_stretch_and_outranks_a_named_end() -> None:
    timeline = Timeline(7, [Mark(START, at(0), "m-a"), Mark(END, at(30), "m-b"), Mark(END, at(90), "m-c")])
    assert meeting_of(timeline, 10) == "m-a"
    assert meeting_of(timeline, 60) == "m-c"


def test_without_an_end_the_next_start_closes_the_meeting() -> None:
    timeline = Timeline(7, [Mark(START, at(0), "m-a"), Mark(START, at(60), "m-b")])
    assert meeting_of(timeline, 59) == "m-a"
    assert meeting_of(timeline, 60) == "m-b"


def test_around_a_mark_spans_the_cuts_on_either_side() -> None:
    new = Mark(END, at(30))
    timeline = Timeline(7, [Mark(START, at(0)), new, Mark(START, at(60))])
    span = timeline.around(new)
    assert span.holds(position(JOIN, at(0))) and span.holds(position(JOIN, at(59)))
    assert not span.holds(position(JOIN, at(60))) and not span.holds(position(JOIN, at(-1)))


Marks = st.lists(
    st.builds(
        Mark,
        st.sampled_from([START, END]),
        st.integers(0, 200).map(at),
        st.sampled_from([None, "m-x", "m-y"]),
    ),
    max_size=8,
)


@given(marks=Marks, order=st.randoms(use_true_random=False), moment=st.integers(-10, 210))
def test_the_answer_depends_only_on_the_set_of_marks(marks: list[Mark], order: Random, moment: int) -> None:
    shuffled = marks + marks[:2]
    order.shuffle(shuffled)
    assert meeting_of(Timeline(7, marks), moment) == meeting_of(Timeline(7, shuffled), moment)
