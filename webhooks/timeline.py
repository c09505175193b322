"""The session page's timeline as geometry: attendance and session bounds in, SVG shapes out.

Pure: no Flask, no clock (the caller passes `now`), no I/O. Coordinates are SVG user units in a fixed-width
viewBox; the template only places what is computed here. Every step sorts once and sweeps, so a session of
thousands of people, or one person on thousands of devices, lays out in n log n.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from webhooks.timeline_axis import Scale, Stay, Tick, concurrency_steps, polyline, scale_for, ticks
from workers.timefmt import UTC_ZONE, on_clock
from workers.wire import AttendanceOut, SegmentOut

WIDTH = 1000.0
LABEL_WIDTH = 200.0  # the gutter holding people's names
RIGHT_PAD = 20.0
CURVE_TOP, CURVE_HEIGHT = 12.0, 70.0
AXIS_Y = CURVE_TOP + CURVE_HEIGHT + 8.0
ROWS_TOP = AXIS_Y + 22.0
ROW_HEIGHT, BAR_HEIGHT = 22.0, 14.0
BOTTOM_AXIS_HEIGHT = 24.0
MIN_BAR_WIDTH = 2.0  # a few seconds in an hour-long meeting would otherwise vanish
LABEL_CHARS = 28
STALE_AFTER = timedelta(seconds=21600)  # the contract's default STALE_SESSION_SECONDS
# Beyond these a row draws the union of the person's segments: lanes thinner than a quarter of a bar
# cannot be told apart, and a hundred bars in one row overlap anyway at their minimum width.
MAX_LANES = 4
MAX_BARS = 100
MIN_GAP = 1.0  # in a union, a gap narrower than this (user units) is closed: it could not be seen


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float  # a person on two devices at once gets two thinner lanes, so both bars show
    inferred: bool  # a bound was not reported by Metered
    open: bool  # still present: drawn up to the latest time known
    title: str


@dataclass(frozen=True)
class Row:
    label: str
    full_name: str
    y: float  # top of the row
    bar_y: float
    bars: list[Bar]
    merged: bool = False  # the bars are the union of the person's segments, not one per segment


@dataclass(frozen=True)
class Timeline:
    width: float
    height: float
    plot_left: float
    plot_right: float
    curve_top: float
    curve_bottom: float
    axis_y: float
    bottom_axis_y: float
    row_height: float
    bar_height: float
    rows: list[Row]
    ticks: list[Tick]
    concurrency_points: str  # an SVG polyline's `points`: a step line of people present
    peak: int
    start_x: float  # the session's start, and its end or `now` while live
    end_x: float
    live: bool
    stale: bool  # live, but silent for longer than the sweeper waits: drawn to the latest time known
    drawn_until: datetime  # the right edge: `now` while live, else the latest time known
    zone: str  # the clock the axis and the tooltips read

    @property
    def merged_rows(self) -> int:
        """Count the rows that draw the union of their segments."""
        return sum(row.merged for row in self.rows)


def stays(person: AttendanceOut) -> list[Stay]:
    """Return a person's segments as (join, leave) pairs."""
    return [(segment.joined_at, segment.left_at) for segment in person.segments]


def build_timeline(
    attendance: Sequence[AttendanceOut],
    started_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
    everyone: Sequence[Sequence[Stay]] | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> Timeline:
    """Lay out a row per person of `attendance` (a bar per segment), the time axis on `zone`'s clock, and
    the concurrency step line of `everyone` (each person's stays; default: the people of `attendance`)."""
    people = sorted(attendance, key=lambda a: (a.first_join_at, a.participant_key))
    everyone = [stays(person) for person in people] if everyone is None else everyone
    plot = (LABEL_WIDTH, WIDTH - RIGHT_PAD)
    scale, session_end, stale = scale_for(_moments(everyone), started_at, ended_at, now, stale_after, plot)
    # One clock for the whole chart: UTC's if the zone's cannot show either end (years 1 and 9999).
    fits = all(on_clock(edge, zone).tzinfo == zone for edge in (scale.lo, scale.hi))
    scale = replace(scale, zone=zone if fits else UTC_ZONE)
    rows = [_row(person, index, scale) for index, person in enumerate(people)]
    steps = concurrency_steps(everyone, scale.hi)
    peak = max((count for _, count in steps), default=0)
    bottom = ROWS_TOP + len(rows) * ROW_HEIGHT + 6.0
    return Timeline(
        width=WIDTH,
        height=bottom + BOTTOM_AXIS_HEIGHT,
        plot_left=LABEL_WIDTH,
        plot_right=WIDTH - RIGHT_PAD,
        curve_top=CURVE_TOP,
        curve_bottom=CURVE_TOP + CURVE_HEIGHT,
        axis_y=AXIS_Y,
        bottom_axis_y=bottom,
        row_height=ROW_HEIGHT,
        bar_height=BAR_HEIGHT,
        rows=rows,
        ticks=ticks(scale),
        concurrency_points=polyline(steps, scale, peak, (CURVE_TOP, CURVE_HEIGHT)),
        peak=peak,
        start_x=scale.x(started_at or scale.lo),
        end_x=scale.x(session_end),
        live=ended_at is None,
        stale=stale,
        drawn_until=scale.hi,
        zone=str(scale.zone),
    )


def _moments(everyone: Sequence[Sequence[Stay]]) -> Iterable[datetime]:
    for person in everyone:
        for joined, left in person:
            yield joined
            if left is not None:
                yield left


def _row(person: AttendanceOut, index: int, scale: Scale) -> Row:
    full_name = person.name or person.email or person.participant_key
    label = full_name if len(full_name) <= LABEL_CHARS else full_name[: LABEL_CHARS - 1] + "…"
    y = ROWS_TOP + index * ROW_HEIGHT
    bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2
    segments = sorted(person.segments, key=lambda s: s.joined_at)
    lanes = _lanes([(s.joined_at, s.left_at or scale.hi) for s in segments])
    if len(segments) > MAX_BARS or max(lanes, default=0) + 1 > MAX_LANES:
        return Row(label, full_name, y, bar_y, _union_bars(full_name, segments, scale, bar_y), merged=True)
    height = BAR_HEIGHT / (max(lanes, default=0) + 1)
    bars = [
        _bar(full_name, segment, scale, bar_y + lane * height, height)
        for segment, lane in zip(segments, lanes, strict=True)
    ]
    return Row(label, full_name, y, bar_y, bars)


def _bar(full_name: str, segment: SegmentOut, scale: Scale, y: float, height: float) -> Bar:
    left = scale.x(segment.joined_at)
    width = max(scale.x(segment.left_at or scale.hi) - left, MIN_BAR_WIDTH)
    until = "still present" if segment.left_at is None else _clock(segment.left_at, scale)
    title = f"{full_name}: {_clock(segment.joined_at, scale)} to {until}" + (
        " (inferred)" if segment.inferred else ""
    )
    return Bar(left, y, width, height, segment.inferred, segment.left_at is None, title)


def _lanes(spans: list[tuple[datetime, datetime]]) -> list[int]:
    # Greedy interval colouring over spans sorted by start: each goes in the lowest lane free by then.
    busy: list[tuple[datetime, int]] = []  # (free from, lane) of the lanes in use
    free: list[int] = []  # lanes in use before and free again
    lanes = []
    for start, end in spans:
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        heapq.heappush(busy, (end, lane))
        lanes.append(lane)
    return lanes


def _union_bars(full_name: str, segments: list[SegmentOut], scale: Scale, bar_y: float) -> list[Bar]:
    # One full-height bar per stretch of presence; `segments` are sorted by join.
    gap = scale.duration(MIN_GAP)
    stretches: list[tuple[datetime, datetime, list[SegmentOut]]] = []
    for segment in segments:
        end = segment.left_at or scale.hi
        if stretches and segment.joined_at - stretches[-1][1] <= gap:  # no sum: it may pass year 9999
            start, until, members = stretches[-1]
            stretches[-1] = (start, max(until, end), members)
            members.append(segment)
        else:
            stretches.append((segment.joined_at, end, [segment]))
    return [_stretch_bar(full_name, *stretch, scale, bar_y) for stretch in stretches]


def _stretch_bar(
    full_name: str, start: datetime, end: datetime, members: list[SegmentOut], scale: Scale, bar_y: float
) -> Bar:
    inferred = any(segment.inferred for segment in members)
    still_open = any(segment.left_at is None for segment in members)
    left = scale.x(start)
    until = "still present" if still_open else _clock(end, scale)
    title = f"{full_name}: {_clock(start, scale)} to {until}, {len(members):,} segments drawn as one" + (
        " (a bound inferred)" if inferred else ""
    )
    return Bar(left, bar_y, max(scale.x(end) - left, MIN_BAR_WIDTH), BAR_HEIGHT, inferred, still_open, title)


def _clock(moment: datetime, scale: Scale) -> str:
    return on_clock(moment, scale.zone).strftime("%H:%M:%S")
