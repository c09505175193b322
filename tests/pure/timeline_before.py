"""The session page's timeline as it was before it was made n log n: the oracle the new one is held to.

Quadratic in one person's overlapping segments (its lane search scans every lane per segment), so only
small inputs are given to it. Unchanged but for this docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workers.wire import AttendanceOut

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
MAX_TICKS = 8
STALE_AFTER = timedelta(seconds=21600)  # the contract's default STALE_SESSION_SECONDS
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


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


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


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


@dataclass(frozen=True)
class _Scale:
    lo: datetime
    hi: datetime

    def x(self, moment: datetime) -> float:
        span = (self.hi - self.lo).total_seconds()
        return LABEL_WIDTH + (moment - self.lo).total_seconds() / span * (WIDTH - LABEL_WIDTH - RIGHT_PAD)


def build_timeline(
    attendance: Sequence[AttendanceOut],
    started_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
) -> Timeline:
    """Lay out one row per person, a bar per segment, the concurrency step line and the time axis."""
    people = sorted(attendance, key=lambda a: (a.first_join_at, a.participant_key))
    scale, session_end, stale = _scale(people, started_at, ended_at, now, stale_after)
    rows = [_row(person, index, scale) for index, person in enumerate(people)]
    steps = concurrency_steps(people, scale.hi)
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
        ticks=ticks(scale.lo, scale.hi),
        concurrency_points=_polyline(steps, scale, peak),
        peak=peak,
        start_x=scale.x(started_at or scale.lo),
        end_x=scale.x(session_end),
        live=ended_at is None,
        stale=stale,
        drawn_until=scale.hi,
    )


def _scale(
    people: Sequence[AttendanceOut],
    started_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
    stale_after: timedelta,
) -> tuple[_Scale, datetime, bool]:
    # Cover every reported moment, so a join before the start webhook is not drawn off the chart.
    moments = [m for m in (started_at, ended_at) if m is not None]
    for person in people:
        for segment in person.segments:
            moments += [segment.joined_at] + ([segment.left_at] if segment.left_at else [])
    latest = max(moments, default=now)
    # A live session silent for longer than the sweeper waits is stale: drawn up to now, the meeting would
    # shrink to a sliver, so its open segments stop at the latest time known instead.
    stale = ended_at is None and now - latest > stale_after
    session_end = ended_at or (latest if stale else max(now, latest))
    lo, hi = min([*moments, session_end]), max(latest, session_end)
    if hi - lo < timedelta(minutes=1):
        hi = lo + timedelta(minutes=1)
    return _Scale(lo, hi), session_end, stale


def _row(person: AttendanceOut, index: int, scale: _Scale) -> Row:
    full_name = person.name or person.email or person.participant_key
    label = full_name if len(full_name) <= LABEL_CHARS else full_name[: LABEL_CHARS - 1] + "…"
    y = ROWS_TOP + index * ROW_HEIGHT
    bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2
    segments = sorted(person.segments, key=lambda s: s.joined_at)
    lanes = _lanes([(s.joined_at, s.left_at or scale.hi) for s in segments])
    height = BAR_HEIGHT / (max(lanes, default=0) + 1)
    bars = []
    for segment, lane in zip(segments, lanes, strict=True):
        left = scale.x(segment.joined_at)
        width = max(scale.x(segment.left_at or scale.hi) - left, MIN_BAR_WIDTH)
        until = "still present" if segment.left_at is None else _clock(segment.left_at)
        title = f"{full_name}: {_clock(segment.joined_at)} to {until}" + (
            " (inferred)" if segment.inferred else ""
        )
        bars.append(
            Bar(left, bar_y + lane * height, width, height, segment.inferred, segment.left_at is None, title)
        )
    return Row(label, full_name, y, bar_y, bars)


def _lanes(spans: list[tuple[datetime, datetime]]) -> list[int]:
    # Greedy interval colouring over spans sorted by start: each goes in the first lane free by then.
    lane_ends: list[datetime] = []
    lanes = []
    for start, end in spans:
        lane = next((i for i, free_at in enumerate(lane_ends) if free_at <= start), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(end)
        else:
            lane_ends[lane] = end
        lanes.append(lane)
    return lanes


def concurrency_steps(people: Sequence[AttendanceOut], latest: datetime) -> list[tuple[datetime, int]]:
    """Return (moment, people present from then on) at each change; open segments run to `latest`."""
    changes: list[tuple[datetime, int]] = []
    for person in people:
        spans = [(s.joined_at, s.left_at or latest) for s in person.segments]
        for start, end in _merged(spans):
            changes += [(start, 1), (end, -1)]
    steps: list[tuple[datetime, int]] = []
    present = 0
    for moment, change in sorted(changes):  # at one instant -1 sorts first: leaves before joins
        present += change
        if steps and steps[-1][0] == moment:
            steps[-1] = (moment, present)
        else:
            steps.append((moment, present))
    return steps


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    # One person on two devices is one person present: overlapping or touching spans merge.
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _polyline(steps: list[tuple[datetime, int]], scale: _Scale, peak: int) -> str:
    def y(count: int) -> float:
        return CURVE_TOP + CURVE_HEIGHT - (count / peak * CURVE_HEIGHT if peak else 0.0)

    points = [(scale.x(scale.lo), y(0))]
    for moment, count in steps:
        points += [(scale.x(moment), points[-1][1]), (scale.x(moment), y(count))]
    points.append((scale.x(scale.hi), points[-1][1]))
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in points)


def ticks(lo: datetime, hi: datetime) -> list[Tick]:
    """Return at most MAX_TICKS ticks at round UTC times between `lo` and `hi`, labelled HH:MM(:SS)."""
    span = (hi - lo).total_seconds()
    whole_days = 86400 * -(-int(span) // (86400 * MAX_TICKS))
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), whole_days)
    scale = _Scale(lo, hi)
    first = -(-int(lo.timestamp()) // step) * step  # the first multiple of step at or after lo
    moments = (datetime.fromtimestamp(t, UTC) for t in range(first, int(hi.timestamp()) + 1, step))
    label = "%H:%M" if step >= 60 else "%H:%M:%S"
    if span >= 86400:  # a chart spanning days must say which day
        label = "%d %b" if step >= 86400 else "%d %b %H:%M"
    return [Tick(scale.x(m), m.strftime(label)) for m in moments if lo <= m <= hi]


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")
