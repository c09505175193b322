"""Times as Rollcall writes them: ISO-8601 UTC in the API, the organizer's clock for people.

The JSON API stays in UTC. Emails, pages and CSV downloads also show each time on the organizer's clock,
the room's `timeZone` option (an IANA name), and name the zone by that name, e.g. `2026-12-03 10:05:00
Europe/Paris`: an IANA name says where, which an abbreviation does not (CST is China's, Cuba's and
America's), and for a UTC room the text is what it always was, `2026-12-03 09:05:00 UTC`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainSerializer, WithJsonSchema

UTC_ZONE = ZoneInfo("UTC")


def iso_ms(moment: datetime) -> str:
    """Return `moment` as e.g. 2021-07-27T18:59:16.448Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcTime = Annotated[
    datetime,
    PlainSerializer(iso_ms, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def zone_of(options: Mapping[str, object]) -> ZoneInfo:
    """Return the organizer's time zone, a room's `timeZone` option: UTC when it is missing or unknown."""
    name = options.get("timeZone")
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a key at all, e.g. "../x" or ""
            pass
    return UTC_ZONE


def on_clock(moment: datetime, zone: ZoneInfo) -> datetime:
    """Return `moment` on the zone's clock, or on UTC's where the zone's would leave the years 1 to 9999."""
    try:
        return moment.astimezone(zone)
    except OverflowError:
        return moment.astimezone(UTC_ZONE)


def local_text(moment: datetime | None, zone: ZoneInfo, named: bool = True) -> str:
    """Format a moment on the zone's clock as e.g. 2026-12-03 10:05:00 Europe/Paris, or a dash.

    named=False leaves the zone out, for a column whose heading names it; a moment the zone cannot show
    (at either end of the calendar) is written in UTC and always says so.
    """
    if moment is None:
        return "-"
    shown = on_clock(moment, zone)
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", not "0001".
    text = shown.isoformat(" ", "seconds")[:19]
    return f"{text} {shown.tzinfo}" if named or shown.tzinfo != zone else text
