"""The timeline's time axis and concurrency curve: the scale from times to x, round ticks, the step line.

Pure, as webhooks.timeline. Times run from year 1 to 9999: nothing here adds a duration to a reported time
without checking it stays in range, so a session at either end of the calendar still draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from workers.timefmt import UTC_ZONE, on_clock

MAX_TICKS = 8
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MINUTE = timedelta(minutes=1)  # the narrowest chart: an instant session still gets an axis
LAST_MOMENT = datetime.max.replace(tzinfo=UTC)
# Changes of the step line closer than this (user units) share one vertical: a session of thousands of
# people changes tens of thousands of times, far more often than the chart has room to show.
CURVE_COLUMN = 0.5

Stay = tuple[datetime, datetime | None]  # a segment's join and leave; None: still present


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Scale:
    """Maps times from `lo` to `hi` onto x from `left` to `right`, read on `zone`'s clock."""

    lo: datetime
    hi: datetime
    left: float
    right: float
    zone: ZoneInfo = UTC_ZONE

    @cached_property
    def seconds(self) -> float:
        """Return how long the scale lasts."""
        return (self.hi - self.lo).total_seconds()

    def x(self, moment: datetime) -> float:
        """Return where `moment` falls on the chart."""
        return self.left + (moment - self.lo).total_seconds() / self.seconds * (self.right - self.left)

    def duration(self, units: float) -> timedelta:
        """Return how long `units` of the chart's width last."""
        return timedelta(seconds=units / (self.right - self.left) * self.seconds)


def scale_for(
    moments: Iterable[datetime],
    started_at: datetime | None,
    ended_at: datetime | None,
    now: datetime,
    stale_after: timedelta,
    plot: tuple[float, float],
) -> tuple[Scale, datetime, bool]:
    """Return the scale covering every reported moment, the session's end as drawn, and whether it is
    stale."""
    # Cover every reported moment, so a join before the start webhook is not drawn off the chart.
    reported = [m for m in (started_at, ended_at) if m is not None]
    reported.extend(moments)
    latest = max(reported, default=now)
    # A live session silent for longer than the sweeper waits is stale: drawn up to now, the meeting would
    # shrink to a sliver, so its open segments stop at the latest time known instead.
    stale = ended_at is None and now - latest > stale_after
    session_end = ended_at or (latest if stale else max(now, latest))
    lo, hi = min(min(reported, default=session_end), session_end), max(latest, session_end)
    if hi - lo < MINUTE:
        lo, hi = (lo, lo + MINUTE) if LAST_MOMENT - lo >= MINUTE else (hi - MINUTE, hi)
    return Scale(lo, hi, *plot), session_end, stale


def ticks(scale: Scale) -> list[Tick]:
    """Return at most MAX_TICKS ticks at round times of the scale's clock, labelled HH:MM(:SS) or by day.

    Round on the clock in force at the chart's start: a chart across a daylight-saving change keeps its
    spacing, and its ticks after the change are an hour off round.
    """
    lo, hi = scale.lo, scale.hi
    span = (hi - lo).total_seconds()
    whole_days = 86400 * -(-int(span) // (86400 * MAX_TICKS))
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), whole_days)
    offset = on_clock(lo, scale.zone).utcoffset() or timedelta(0)
    shift = int(offset.total_seconds())  # whole seconds in every zone since 1972
    first = -(-(int(lo.timestamp()) + shift) // step) * step - shift  # the first round time at or after lo
    moments = (datetime.fromtimestamp(t, UTC) for t in range(first, int(hi.timestamp()) + 1, step))
    return [
        Tick(scale.x(m), _tick_label(on_clock(m, scale.zone), step, span)) for m in moments if lo <= m <= hi
    ]


def _tick_label(moment: datetime, step: int, span: float) -> str:
    if span >= 366 * 86400:  # a chart spanning years must say which year (%Y does not pad year 1)
        return moment.date().isoformat()
    if span >= 86400:  # a chart spanning days must say which day
        return moment.strftime("%d %b" if step >= 86400 else "%d %b %H:%M")
    return moment.strftime("%H:%M" if step >= 60 else "%H:%M:%S")


def concurrency_steps(everyone: Iterable[Sequence[Stay]], latest: datetime) -> list[tuple[datetime, int]]:
    """Return (moment, people present from then on) at each change; open segments run to `latest`."""
    changes: list[tuple[datetime, int]] = []
    for person in everyone:
        for start, end in _merged([(joined, left or latest) for joined, left in person]):
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


def polyline(steps: list[tuple[datetime, int]], scale: Scale, peak: int, curve: tuple[float, float]) -> str:
    """Return the step line's SVG `points` in the band `curve` (its top and height), up to `peak`."""
    top, height = curve

    def y(count: int) -> float:
        return top + height - (count / peak * height if peak else 0.0)

    points = [(scale.left, y(0))]
    for x, counts in _columns(steps, scale):
        level = points[-1][1]
        if len(counts) == 1:
            points += [(x, level), (x, y(counts[0]))]
        else:  # up and down within the column, ending at its last count
            points += [(x, level), (x, y(max(counts))), (x, y(min(counts))), (x, y(counts[-1]))]
    points.append((scale.right, points[-1][1]))
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in points)


def _columns(steps: list[tuple[datetime, int]], scale: Scale) -> list[tuple[float, list[int]]]:
    # Consecutive steps within one CURVE_COLUMN of the chart, each as its first x and its counts.
    columns: list[tuple[float, list[int]]] = []
    current = None
    for moment, count in steps:
        x = scale.x(moment)
        column = int((x - scale.left) // CURVE_COLUMN)
        if column == current:
            columns[-1][1].append(count)
        else:
            columns.append((x, [count]))
            current = column
    return columns
