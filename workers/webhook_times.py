"""The times in Metered's webhooks: ISO-8601 (no offset means UTC), Unix seconds or Unix milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from pydantic_core import PydanticCustomError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1e11 is the year 5138 in seconds but 1973 in milliseconds: no real webhook time is ambiguous.
_MILLISECONDS_FROM = Decimal(100_000_000_000)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
# The times a webhook may report. Metered dates from this century; a time outside it is a unit or clock
# mistake, and folding it in would stretch a session over decades. The bound keeps every duration Rollcall
# derives within a BIGINT of milliseconds and every time within what Python and both databases hold.
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def metered_time(value: object) -> datetime:
    """Read an ISO-8601 time (no offset = UTC), Unix seconds or Unix milliseconds; UTC, to the millisecond."""
    try:
        if isinstance(value, str) and not _NUMBER.match(value.strip()):
            return truncate_ms(_iso_time(value.strip()))
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return _epoch_time(Decimal(str(value).strip()))
    except (ValueError, OverflowError, ArithmeticError):
        pass
    raise PydanticCustomError("time", "not a readable time: use ISO-8601, Unix seconds or Unix milliseconds")


def webhook_time(value: object) -> datetime:
    """Read a webhook's time as metered_time does, and refuse one before EARLIEST or from LATEST on."""
    moment = metered_time(value)
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError("time_range", "outside the accepted years 2000 to 2099 (UTC)")
    return moment


def _iso_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _epoch_time(number: Decimal) -> datetime:
    if not number.is_finite():
        raise ValueError("not finite")
    milliseconds = number if abs(number) >= _MILLISECONDS_FROM else number * 1000
    return _EPOCH + timedelta(milliseconds=int(milliseconds.to_integral_value(ROUND_FLOOR)))


def truncate_ms(moment: datetime) -> datetime:
    """Drop the microseconds below the millisecond (the precision Rollcall stores and reports)."""
    if moment.microsecond % 1000 == 0:  # the usual case: Metered reports milliseconds
        return moment
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
