"""Delivery parsing, read back: a stored delivery's facts, from its columns or from its raw body.

The receiver parses every body it accepts and keeps, in the delivery's own columns, what folding needs
of it, stamped with FACTS_VERSION. Reading those back costs far less than parsing 100,000 bodies again,
so a rebuild trusts them; a row stamped by another parser version is re-read from its raw body, which is
always kept. (Apart from parsing.py because it reads the inbox table, whose columns are sized by parsing.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, null

from workers.deliveries.parsing import FACTS_VERSION, DeliveryFacts, parse_delivery
from workers.models.inbox import Delivery

# Each DeliveryFacts field the columns keep, and its column. Not kept: room_name and room_id (checked
# against the room at receipt, never after) and meta (nothing reads it); they come back None.
COLUMN_OF_FIELD = {
    "event": "event",
    "meeting_session_id": "meeting_session_ref",
    "participant_session_id": "participant_session_id",
    "external_user_id": "external_user_id",
    "email": "email",
    "name": "name",
    "is_admin": "is_admin",
    "event_time": "event_time",
    "time_reported": "time_reported",
    "join_time": "join_time",
    "dedupe_key": "dedupe_key",
}

# The columns facts_of_row reads, in its order: the kept ones, then what re-reading a body needs.
_COLUMN_NAMES = (*COLUMN_OF_FIELD.values(), "facts_version", "raw_body", "content_type", "received_at")
# What to select for read_facts. The raw body comes only with rows whose columns are not trusted: bodies
# are most of a delivery's bytes, and a big session's rebuild would otherwise fetch every one of them.
FACT_COLUMNS = tuple(
    case((Delivery.facts_version == FACTS_VERSION, null()), else_=Delivery.raw_body).label(name)
    if name == "raw_body"
    else getattr(Delivery, name)
    for name in _COLUMN_NAMES
)

_RECEIVED_AT = _COLUMN_NAMES.index("received_at")


def fact_values(facts: DeliveryFacts) -> dict[str, Any]:
    """Return the delivery columns that keep what folding needs of `facts`."""
    kept = {column: getattr(facts, field) for field, column in COLUMN_OF_FIELD.items()}
    return {**kept, "facts_version": FACTS_VERSION}


def facts_of(delivery: Delivery) -> DeliveryFacts:
    """Return what a stored delivery says (see facts_of_row)."""
    return facts_of_row(tuple(getattr(delivery, name) for name in _COLUMN_NAMES))


def read_facts(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[DeliveryFacts, datetime]]:
    """Yield what each row of FACT_COLUMNS says, with when it was received."""
    for row in rows:
        yield facts_of_row(row), row[_RECEIVED_AT]


def facts_of_row(row: Sequence[Any]) -> DeliveryFacts:
    """Return what a row of FACT_COLUMNS says: its columns if this parser filled them, else its body."""
    # Unpacked, not read by name: a Row's attribute access costs more than the rest of this function.
    (
        event, meeting_session_ref, participant_session_id, external_user_id, email, name, is_admin,
        event_time, time_reported, join_time, dedupe_key, facts_version, raw_body, content_type, received_at,
    ) = row  # fmt: skip
    if facts_version != FACTS_VERSION:
        if raw_body is None:
            raise ValueError("a delivery without current fact columns needs its raw body")
        return parse_delivery(event, raw_body.encode(), content_type, received_at)
    return DeliveryFacts(
        event=event,
        meeting_session_id=meeting_session_ref,
        participant_session_id=participant_session_id,
        room_name=None,
        room_id=None,
        external_user_id=external_user_id,
        email=email,
        name=name,
        is_admin=is_admin,
        meta=None,
        event_time=event_time,
        time_reported=time_reported,
        join_time=join_time,
        dedupe_key=dedupe_key,
    )
