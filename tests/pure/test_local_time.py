"""The organizer's clock: a room's timeZone read leniently, and times written on it with the zone named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.timefmt import UTC_ZONE, local_text, zone_of

PARIS = zone_of({"timeZone": "Europe/Paris"})


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"timeZone": None},
        {"timeZone": 1},
        {"timeZone": "Mars/Base"},
        {"timeZone": ""},
        {"timeZone": "../../etc/passwd"},
    ],
)
def test_a_missing_or_unknown_time_zone_is_utc(options: dict[str, object]) -> None:
    assert zone_of(options) is UTC_ZONE


def test_times_name_the_zone_and_follow_its_daylight_saving() -> None:
    assert local_text(datetime(2026, 12, 3, 9, 5, tzinfo=UTC), PARIS) == "2026-12-03 10:05:00 Europe/Paris"
    assert local_text(datetime(2026, 7, 3, 9, 5, tzinfo=UTC), PARIS) == "2026-07-03 11:05:00 Europe/Paris"
    assert local_text(datetime(2026, 7, 3, 9, 5, tzinfo=UTC), PARIS, named=False) == "2026-07-03 11:05:00"
    assert local_text(datetime(2026, 7, 3, 9, 5, tzinfo=UTC), UTC_ZONE) == "2026-07-03 09:05:00 UTC"
    assert local_text(None, PARIS) == "-"


def test_a_time_the_zone_cannot_show_is_written_in_utc_and_says_so_even_unnamed() -> None:
    new_york, tokyo = zone_of({"timeZone": "America/New_York"}), zone_of({"timeZone": "Asia/Tokyo"})
    first, last = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)
    assert local_text(first, new_york, named=False) == "0001-01-01 00:00:00 UTC"
    assert local_text(last, tokyo, named=False) == "9999-12-31 23:00:00 UTC"
