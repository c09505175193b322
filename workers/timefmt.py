"""The API's time format: ISO-8601 UTC with milliseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema


def iso_ms(moment: datetime) -> str:
    """Return `moment` as e.g. 2021-07-27T18:59:16.448Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcTime = Annotated[
    datetime,
    PlainSerializer(iso_ms, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
