"""The timeline's geometry: attendance wire objects and session bounds in, rows, bars, curve and ticks out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pure import timeline_before
from webhooks.timeline import (
    BAR_HEIGHT,
    LABEL_WIDTH,
    MAX_BARS,
    MAX_LANES,
    RIGHT_PAD,
    WIDTH,
    Timeline,
    _lanes,
    build_timeline,
    stays,
)
from webhooks.timeline_axis import Scale, Tick, concurrency_steps, ticks
from workers.wire import AttendanceOut, SegmentOut

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLOT = WIDTH - LABEL_WIDTH - RIGHT_PAD


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def person(key: str, *spans: tuple[float, float | None, bool], name: str | None = None) -> AttendanceOut:
    segments = [
        SegmentOut(
            participant_session_id=f"{key}-{i}",
            joined_at=at(start),
            left_at=None if end is None else at(end),
            inferred=inferred,
        )
        for i, (start, end, inferred) in enumerate(spans)
    ]
    return AttendanceOut(
        participant_key=key,
        identified_by="name",
        name=name if name is not None else key,
        email=None,
        external_user_id=None,
        first_join_at=min(s.joined_at for s in segments),
        last_left_at=None,
        attended_seconds=0,
        attendance_percent=None,
        join_count=len(segments),
        present=None,
        inferred=any(s.inferred for s in segments),
        segments=segments,
    )


def chart(lo: datetime, hi: datetime) -> Scale:
    return Scale(lo, hi, LABEL_WIDTH, WIDTH - RIGHT_PAD)


def points(polyline: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in polyline.split())]


def test_one_row_per_person_in_order_of_first_join_with_a_bar_per_segment() -> None:
    people = [person("bob", (15, 30, False), (40, 45, False)), person("ann", (0, 60, False))]
    timeline = build_timeline(people, at(0), at(60), now=at(500))
    assert [row.label for row in timeline.rows] == ["ann", "bob"]
    ann, bob = timeline.rows
    assert (ann.bars[0].x, ann.bars[0].width) == pytest.approx((LABEL_WIDTH, PLOT))
    assert [v for b in bob.bars for v in (b.x, b.width)] == pytest.approx(
        [LABEL_WIDTH + PLOT / 4, PLOT / 4, LABEL_WIDTH + PLOT * 40 / 60, PLOT * 5 / 60]
    )
    assert bob.y > ann.y and bob.bar_y > bob.y
    assert timeline.height > bob.y + timeline.row_height


def test_inferred_and_open_segments_are_flagged_and_an_open_one_runs_to_now() -> None:
    people = [person("cy", (0, None, False)), person("di", (10, 20, True))]
    timeline = build_timeline(people, at(0), None, now=at(30))
    cy, di = timeline.rows
    assert timeline.live and timeline.drawn_until == at(30)
    assert cy.bars[0].open and not cy.bars[0].inferred and "still present" in cy.bars[0].title
    assert cy.bars[0].x + cy.bars[0].width == pytest.approx(WIDTH - RIGHT_PAD)
    assert di.bars[0].inferred and not di.bars[0].open and "(inferred)" in di.bars[0].title
    assert timeline.end_x == pytest.approx(WIDTH - RIGHT_PAD)


def test_concurrency_counts_a_person_on_two_devices_once_and_leaves_before_joins() -> None:
    people = [
        person("ann", (0, 30, False), (10, 40, False)),  # two devices, overlapping
        person("bob", (40, 50, False)),  # joins the instant Ann leaves
    ]
    assert concurrency_steps([stays(p) for p in people], at(60)) == [(at(0), 1), (at(40), 1), (at(50), 0)]


def test_the_curve_is_a_step_line_from_the_baseline_up_to_the_peak() -> None:
    people = [person("ann", (0, 60, False)), person("bob", (30, 45, False))]
    timeline = build_timeline(people, at(0), at(60), now=at(60))
    line = points(timeline.concurrency_points)
    assert timeline.peak == 2
    assert line[0] == (LABEL_WIDTH, timeline.curve_bottom)
    assert line[-1] == pytest.approx((WIDTH - RIGHT_PAD, timeline.curve_bottom))
    assert min(y for _, y in line) == pytest.approx(timeline.curve_top)
    # Steps only: every segment is horizontal or vertical.
    assert all(x1 == x2 or y1 == y2 for (x1, y1), (x2, y2) in pairwise(line))


def test_the_chart_covers_a_join_before_the_start_and_the_session_bounds_are_marked() -> None:
    timeline = build_timeline([person("ann", (-10, 50, False))], at(0), at(50), now=at(99))
    assert timeline.rows[0].bars[0].x == LABEL_WIDTH
    assert timeline.start_x == pytest.approx(LABEL_WIDTH + PLOT / 6)
    assert timeline.end_x == pytest.approx(WIDTH - RIGHT_PAD)


def test_an_empty_or_instant_session_still_has_an_axis_and_a_flat_curve() -> None:
    timeline = build_timeline([], at(0), at(0), now=at(5))
    assert timeline.rows == [] and timeline.peak == 0
    assert {y for _, y in points(timeline.concurrency_points)} == {timeline.curve_bottom}
    assert timeline.ticks and timeline.drawn_until == at(1)


def test_a_long_name_is_shortened_on_the_chart_and_kept_whole_for_its_tooltip() -> None:
    name = "Bartholomew Fitzwilliam-Montgomery the Third"
    row = build_timeline([person("b", (0, 5, False), name=name)], at(0), at(5), now=at(5)).rows[0]
    assert row.full_name == name and row.label.endswith("…") and len(row.label) <= 28


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (timedelta(hours=1), ["09:00", "09:10", "09:20", "09:30", "09:40", "09:50", "10:00"]),
        (
            timedelta(seconds=90),
            ["09:00:00", "09:00:15", "09:00:30", "09:00:45", "09:01:00", "09:01:15", "09:01:30"],
        ),
        (
            timedelta(days=3),
            ["02 Mar 12:00", "03 Mar 00:00", "03 Mar 12:00", "04 Mar 00:00", "04 Mar 12:00", "05 Mar 00:00"],
        ),
        (timedelta(days=10), ["04 Mar", "06 Mar", "08 Mar", "10 Mar", "12 Mar"]),
    ],
)
def test_ticks_fall_on_round_utc_times_and_are_few(span: timedelta, labels: list[str]) -> None:
    found = ticks(chart(T0, T0 + span))
    assert [tick.label for tick in found] == labels
    assert all(LABEL_WIDTH <= tick.x <= WIDTH - RIGHT_PAD + 1e-9 for tick in found)


def test_ticks_start_at_the_first_round_time_after_an_odd_start() -> None:
    found = ticks(chart(at(7.5), at(47)))
    assert found[0].label == "09:10" and found[0].x > LABEL_WIDTH
    assert all(LABEL_WIDTH <= tick.x <= WIDTH - RIGHT_PAD for tick in found)


@pytest.mark.parametrize(
    ("zone", "labels"),
    [
        ("America/New_York", ["04:00", "04:10", "04:20", "04:30", "04:40", "04:50", "05:00"]),
        # UTC+05:45: ticks at round UTC times would read 14:45, 14:55...; they fall on round local times.
        ("Asia/Kathmandu", ["14:50", "15:00", "15:10", "15:20", "15:30", "15:40"]),
    ],
)
def test_ticks_fall_on_round_times_of_the_organizers_clock(zone: str, labels: list[str]) -> None:
    found = ticks(dataclasses.replace(chart(T0, T0 + timedelta(hours=1)), zone=ZoneInfo(zone)))
    assert [tick.label for tick in found] == labels


def test_the_timeline_reads_the_organizers_clock_and_falls_back_to_utc_where_it_cannot() -> None:
    paris = ZoneInfo("Europe/Paris")
    timeline = build_timeline([person("ann", (0, 30, False), name="Ann")], at(0), at(60), at(60), zone=paris)
    assert timeline.zone == "Europe/Paris"
    assert timeline.rows[0].bars[0].title == "Ann: 10:00:00 to 10:30:00"
    first = datetime(1, 1, 1, tzinfo=UTC)  # the first moment there is: New York's clock would be in year 0
    edge = build_timeline([], first, first + timedelta(hours=1), first, zone=ZoneInfo("America/New_York"))
    assert edge.zone == "UTC" and edge.ticks[0].label == "00:00"


def test_two_devices_at_once_share_the_row_in_two_lanes_and_one_device_keeps_the_full_bar() -> None:
    people = [person("dev", (10, 60, False), (40, 80, False), (85, 90, False)), person("one", (0, 90, False))]
    timeline = build_timeline(people, at(0), at(90), now=at(90))
    one, dev = timeline.rows
    assert [(bar.y, bar.height) for bar in one.bars] == [(one.bar_y, timeline.bar_height)]
    half = timeline.bar_height / 2
    assert [(bar.y, bar.height) for bar in dev.bars] == [
        (dev.bar_y, half),
        (dev.bar_y + half, half),
        (dev.bar_y, half),  # the first lane is free again by then
    ]


def test_a_live_session_silent_past_the_stale_horizon_is_drawn_to_the_latest_time_known() -> None:
    people = [person("ann", (0, None, False)), person("bob", (5, 20, False))]
    fresh = build_timeline(people, at(0), None, now=at(60), stale_after=timedelta(hours=6))
    assert not fresh.stale and fresh.drawn_until == at(60)
    stale = build_timeline(people, at(0), None, now=at(60 * 24 * 30), stale_after=timedelta(hours=6))
    assert stale.live and stale.stale and stale.drawn_until == at(20)
    assert stale.rows[0].bars[0].open
    assert stale.rows[1].bars[0].x + stale.rows[1].bars[0].width == pytest.approx(WIDTH - RIGHT_PAD)


# Minutes in [-60, 1200]: the chart is then at most 1260 minutes wide, so distinct minutes are more than half
# a unit apart and the curve never shares a column between two changes, as the old one never did.
minute = st.integers(-60, 1200)
stay = st.tuples(minute, st.one_of(st.none(), st.integers(0, 300)), st.booleans())


@st.composite
def meetings(draw: st.DrawFn) -> tuple[list[AttendanceOut], datetime | None, datetime | None, datetime]:
    """Up to six people of one to three segments each (so never more lanes than a row draws) and bounds."""
    people = []
    for n in range(draw(st.integers(0, 6))):
        spans = [
            (start, None if length is None else start + length, inferred)
            for start, length, inferred in draw(st.lists(stay, min_size=1, max_size=3))
        ]
        people.append(person(f"p{n}", *spans, name=draw(st.sampled_from(["", "Ann", f"P {n}"]))))
    started = draw(st.one_of(st.none(), minute.map(at)))
    ended = draw(st.one_of(st.none(), minute.map(at)))
    return people, started, ended, at(draw(minute))


def drawn(timeline: Any) -> dict[str, Any]:
    """Return everything a timeline draws, old or new, as plain data."""
    shapes = dataclasses.asdict(timeline)
    shapes.pop("zone", None)  # the old one read UTC only, the new one's default
    for row in shapes["rows"]:
        row.pop("merged", None)
    return shapes


# Three times the profile's count: 300 in `make test`, 30 in `make test-pure`'s quick profile.
@settings(max_examples=3 * settings().max_examples, deadline=None)
@given(meeting=meetings())
def test_the_timeline_draws_what_the_quadratic_one_drew(meeting: Any) -> None:
    people, started, ended, now = meeting
    stale_after = timedelta(hours=3)
    new = build_timeline(people, started, ended, now, stale_after)
    assert not new.merged_rows
    assert drawn(new) == drawn(timeline_before.build_timeline(people, started, ended, now, stale_after))


@settings(max_examples=3 * settings().max_examples, deadline=None)
@given(spans=st.lists(st.tuples(minute, st.integers(0, 100)), max_size=40))
def test_lanes_are_the_lowest_free_lane_as_the_quadratic_search_found(spans: list[tuple[int, int]]) -> None:
    ordered = sorted((at(start), at(start + length)) for start, length in spans)
    assert _lanes(ordered) == timeline_before._lanes(ordered)


@settings(deadline=None)
@given(meeting=meetings(), cut=st.integers(0, 6))
def test_a_page_of_rows_draws_the_curve_and_axis_of_everyone(meeting: Any, cut: int) -> None:
    people, started, ended, now = meeting
    everyone = [stays(p) for p in people]
    whole = build_timeline(people, started, ended, now)
    ordered = sorted(people, key=lambda a: (a.first_join_at, a.participant_key))
    page = build_timeline(ordered[cut:], started, ended, now, everyone=everyone)
    for name in ("concurrency_points", "peak", "ticks", "start_x", "end_x", "drawn_until"):
        assert getattr(page, name) == getattr(whole, name)
    assert [placed(r) for r in page.rows] == [placed(r) for r in whole.rows[cut:]]


def placed(row: Any) -> list[Any]:
    """Return a row's bars placed relative to the row: the same person draws the same on any page."""
    return [dataclasses.replace(bar, y=round(bar.y - row.y, 9)) for bar in row.bars]


def test_more_devices_at_once_than_lanes_draws_their_union_and_says_how_many_it_joins() -> None:
    many = [(10 + 5 * n, 40 + 5 * n, n == 2) for n in range(MAX_LANES + 1)]  # all overlap at 30-40
    people = [person("dev", *many, (70, 80, False)), person("few", *many[:MAX_LANES])]
    timeline = build_timeline(people, at(0), at(90), now=at(90))
    dev, few = timeline.rows
    assert dev.merged and not few.merged and timeline.merged_rows == 1
    assert [v for bar in dev.bars for v in (bar.x, bar.width)] == pytest.approx(
        [LABEL_WIDTH + PLOT * 10 / 90, PLOT * 50 / 90, LABEL_WIDTH + PLOT * 70 / 90, PLOT * 10 / 90]
    )
    assert [(bar.y, bar.height, bar.inferred) for bar in dev.bars] == [
        (dev.bar_y, BAR_HEIGHT, True),
        (dev.bar_y, BAR_HEIGHT, False),
    ]
    assert dev.bars[0].title == "dev: 09:10:00 to 10:00:00, 5 segments drawn as one (a bound inferred)"
    assert len({bar.height for bar in few.bars}) == 1 and few.bars[0].height == BAR_HEIGHT / MAX_LANES


def test_more_segments_than_a_row_draws_close_the_gaps_too_short_to_see() -> None:
    # A flapping connection: a second on, a second off, for five minutes of an hour; then one more stay.
    flaps = [(n / 60, (n + 1) / 60, False) for n in range(0, 2 * (MAX_BARS + 50), 2)]
    timeline = build_timeline([person("flap", *flaps, (40, None, False))], at(0), None, now=at(60))
    (row,) = timeline.rows
    assert row.merged
    assert [bar.title for bar in row.bars] == [
        f"flap: 09:00:00 to 09:04:59, {len(flaps)} segments drawn as one",
        "flap: 09:40:00 to still present, 1 segments drawn as one",
    ]
    assert [bar.open for bar in row.bars] == [False, True]


def test_ten_thousand_overlapping_segments_of_one_person_draw_one_bar() -> None:
    devices = [(n * 0.006, 40 + n * 0.006, False) for n in range(10_000)]
    timeline = build_timeline([person("crowd", *devices)], at(0), at(100), now=at(100))
    (row,) = timeline.rows
    assert row.merged and len(row.bars) == 1
    assert row.bars[0].title.endswith("10,000 segments drawn as one")
    assert timeline.peak == 1


def test_changes_too_close_to_tell_apart_share_one_vertical_of_the_curve() -> None:
    second = 1 / 60
    people = [person(f"p{n}", (n * second, 60, False)) for n in range(3)]  # joins 0.2 units apart
    timeline = build_timeline(people, at(0), at(60), now=at(60))
    assert timeline.concurrency_points == (
        "200.0,82.0 200.0,82.0 200.0,12.0 200.0,58.7 200.0,12.0 980.0,12.0 980.0,82.0 980.0,82.0"
    )


LAST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
FIRST = datetime(1, 1, 1, tzinfo=UTC)


def stay_at(joined: datetime, left: datetime | None) -> AttendanceOut:
    segment = SegmentOut(participant_session_id="s", joined_at=joined, left_at=left, inferred=False)
    return person("edge", (0, 1, False)).model_copy(update={"first_join_at": joined, "segments": [segment]})


@pytest.mark.parametrize(
    ("joined", "left", "started", "ended", "now"),
    [
        (LAST, LAST, LAST, LAST, T0),  # an instant at the very end of the calendar
        (LAST, None, LAST, None, T0),  # live there: drawn up to the latest time known, not to now
        (LAST - timedelta(seconds=30), LAST, None, None, LAST),
        (FIRST, FIRST, FIRST, FIRST, T0),  # and at its very start
        (FIRST, None, FIRST, None, T0),  # live since year 1: stale
        (FIRST, LAST, FIRST, LAST, T0),  # a meeting of eight thousand years
    ],
)
def test_times_at_either_end_of_the_calendar_still_draw(
    joined: datetime, left: datetime | None, started: datetime | None, ended: datetime | None, now: datetime
) -> None:
    timeline: Timeline = build_timeline([stay_at(joined, left)], started, ended, now)
    assert LABEL_WIDTH <= timeline.rows[0].bars[0].x <= WIDTH - RIGHT_PAD
    assert timeline.ticks and all(
        LABEL_WIDTH <= tick.x <= WIDTH - RIGHT_PAD + 1e-9 for tick in timeline.ticks
    )
    latest = max(m for m in (joined, left, started, ended) if m is not None)
    assert timeline.drawn_until - latest in (timedelta(0), timedelta(minutes=1))  # an instant: a minute wide
    end = left or timeline.drawn_until  # an open segment is drawn up to the right edge
    assert timeline.peak == (1 if end > joined else 0)


def test_a_chart_spanning_years_labels_its_ticks_with_the_year() -> None:
    found = ticks(chart(FIRST, LAST))
    assert 2 <= len(found) <= 8
    assert all(len(tick.label) == 10 and tick.label[4] == "-" for tick in found)
    assert isinstance(found[0], Tick) and found[0].label.startswith("0")
