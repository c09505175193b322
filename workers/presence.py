"""Presence as integer-millisecond intervals: unions, joins after a reconnect grace, the peak of many.

Pure and on plain ints: a big session's figures sort and sweep hundreds of thousands of these, and ints
compare far faster than datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable

FOREVER = 2**63  # the end, in ms, of a segment that is still open


def spans(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the union of half-open [start, end) intervals as sorted, disjoint spans."""
    # Touching spans merge too: handing over from one device to another is no absence.
    merged: list[tuple[int, int]] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covered_ms(intervals: Iterable[tuple[int, int]]) -> int:
    """Return how long the union of half-open [start, end) intervals lasts."""
    return sum(end - start for start, end in spans(intervals))


def count_joins(presence: Iterable[tuple[int, int]], grace_ms: int) -> int:
    """Count one person's joins: a return within the grace, or while still present, is not one."""
    joins, last_present = 0, None  # last_present: the latest leave so far, in ms
    for start, end in sorted(presence):
        # An overlap (an earlier segment still open at this join) has a negative gap.
        if last_present is None or start - last_present >= grace_ms:
            joins += 1
        last_present = end if last_present is None else max(last_present, end)
    return joins


def peak(spans_per_person: Iterable[list[tuple[int, int]]]) -> int:
    """Return the most people present at one instant, given each person's disjoint spans."""
    # A sweep over the sorted starts and ends (plain ints sort much faster than (time, change) events):
    # the people present as a span starts are the spans started so far less those already ended.
    starts: list[int] = []
    ends: list[int] = []
    for person_spans in spans_per_person:
        for start, end in person_spans:
            starts.append(start)
            ends.append(end)
    starts.sort()
    ends.sort()
    most = ended = 0
    for started, start in enumerate(starts, 1):
        while ends[ended] <= start:  # a leave at this instant counts first: a hand-over is no overlap
            ended += 1
        most = max(most, started - ended)
    return most
