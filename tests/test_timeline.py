"""The timeline's geometry: attendance wire objects and session bounds in, rows, bars, curve and ticks out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from webhooks.timeline import LABEL_WIDTH, RIGHT_PAD, WIDTH, build_timeline, concurrency_steps, ticks
from workers.reports import AttendanceOut, SegmentOut

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
    assert concurrency_steps(people, at(60)) == [(at(0), 1), (at(40), 1), (at(50), 0)]


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
    found = ticks(T0, T0 + span)
    assert [tick.label for tick in found] == labels
    assert all(LABEL_WIDTH <= tick.x <= WIDTH - RIGHT_PAD + 1e-9 for tick in found)


def test_ticks_start_at_the_first_round_time_after_an_odd_start() -> None:
    found = ticks(at(7.5), at(47))
    assert found[0].label == "09:10" and found[0].x > LABEL_WIDTH
    assert all(LABEL_WIDTH <= tick.x <= WIDTH - RIGHT_PAD for tick in found)


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
