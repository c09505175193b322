"""Keyset pagination: `limit` and an opaque `cursor` in, `nextCursor` out."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from flask import request

from webhooks.errors import invalid_fields
from workers.timefmt import iso_ms
from workers.wire import Listing

T = TypeVar("T")
Answer = TypeVar("Answer", bound=Listing[Any])

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # the largest id any of our databases stores

# What a list is ordered by: ids, string keys, or a time with an id to break ties.
Position = int | str | tuple[datetime, int]
CursorKind = Literal["id", "key", "at"]


@dataclass(frozen=True)
class Page:
    """The requested page: at most `limit` items after the item at `after` (an id, a key or a time and id)."""

    limit: int
    after: int | None
    after_key: str | None = None
    after_at: tuple[datetime, int] | None = None


def requested_page(kind: CursorKind = "id") -> Page:
    """Read `limit` and a `cursor` of the list's `kind` from the query string; 422 if bad."""
    errors = []
    limit = DEFAULT_LIMIT
    raw_limit = request.args.get("limit")
    if raw_limit is not None:
        asked = whole_number(raw_limit, 1, MAX_LIMIT)
        if asked is None:
            errors.append({"field": "limit", "message": f"must be a whole number from 1 to {MAX_LIMIT}"})
        else:
            limit = asked
    after: Position | None = None
    raw_cursor = request.args.get("cursor")
    if raw_cursor:
        after = _decode(raw_cursor)
        if after is None or _kind(after) != kind:
            errors.append({"field": "cursor", "message": "is not a cursor this API gave out"})
    if errors:
        raise invalid_fields(errors)
    if isinstance(after, str):
        return Page(limit, None, after_key=after)
    if isinstance(after, tuple):
        return Page(limit, None, after_at=after)
    return Page(limit, after)


def page_of(
    listing: type[Answer],
    rows: Sequence[T],
    page: Page,
    show: Callable[[T], Any],
    id_of: Callable[[T], Position],
) -> Answer:
    """Return the `listing` of up to limit+1 rows: its items, and the next cursor (null on the last page)."""
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    cursor = _encode(id_of(shown[-1])) if more else None
    return listing(items=[show(row) for row in shown], next_cursor=cursor)


def _kind(position: Position) -> CursorKind:
    return "key" if isinstance(position, str) else "at" if isinstance(position, tuple) else "id"


def _encode(position: Position) -> str:
    if isinstance(position, tuple):
        text = f"at:{iso_ms(position[0])}|{position[1]}"
    else:
        text = f"{_kind(position)}:{position}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> Position | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, position = text.partition(":")
    if prefix == "key":
        return position
    if prefix == "at":
        moment, _, row_id = position.partition("|")
        try:
            at = datetime.fromisoformat(moment)
            if at.tzinfo is None:
                return None
            # A time near year 1 or 9999 with an offset has no UTC equivalent: refuse it here, not when bound.
            at = at.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
        row = whole_number(row_id, 0, MAX_ID)
        return None if row is None else (at, row)
    return whole_number(position, 0, MAX_ID) if prefix == "id" else None


def whole_number(text: str, lowest: int, highest: int) -> int | None:
    """Return `text` read as a whole number from `lowest` to `highest`, None if it is not one."""
    # str.isdigit() alone accepts "²", which int() refuses; int() refuses more than 4,300 digits with an
    # error of its own, so a number longer than the highest is refused before it is read.
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(highest))):
        return None
    value = int(text)
    return value if lowest <= value <= highest else None
