"""Keyset pagination: `limit` and an opaque `cursor` in, `nextCursor` out."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import request

from webhooks.errors import invalid_fields

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # the largest id any of our databases stores


@dataclass(frozen=True)
class Page:
    """The requested page: at most `limit` items after the item whose id is `after` (or key `after_key`)."""

    limit: int
    after: int | None
    after_key: str | None = None


def requested_page(by_key: bool = False) -> Page:
    """Read `limit` and `cursor` (over ids, or over string keys) from the query string; 422 if bad."""
    errors = []
    limit = DEFAULT_LIMIT
    raw_limit = request.args.get("limit")
    if raw_limit is not None:
        if not _whole_number(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            errors.append({"field": "limit", "message": f"must be a whole number from 1 to {MAX_LIMIT}"})
        else:
            limit = int(raw_limit)
    after: int | str | None = None
    raw_cursor = request.args.get("cursor")
    if raw_cursor:
        after = _decode(raw_cursor)
        if after is None or isinstance(after, str) != by_key:
            errors.append({"field": "cursor", "message": "is not a cursor this API gave out"})
    if errors:
        raise invalid_fields(errors)
    if isinstance(after, str):
        return Page(limit, None, after)
    return Page(limit, after)


def page_body(
    rows: Sequence[T], page: Page, show: Callable[[T], Any], id_of: Callable[[T], int | str]
) -> dict[str, Any]:
    """Return the list answer from up to limit+1 rows: `items` and `nextCursor` (null on the last page)."""
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    return {"items": [show(row) for row in shown], "nextCursor": _encode(id_of(shown[-1])) if more else None}


def _encode(position: int | str) -> str:
    text = f"key:{position}" if isinstance(position, str) else f"id:{position}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> int | str | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, position = text.partition(":")
    if prefix == "key":
        return position
    return int(position) if prefix == "id" and _whole_number(position) and int(position) <= MAX_ID else None


def _whole_number(text: str) -> bool:
    # str.isdigit() alone accepts "²", which int() refuses.
    return text.isascii() and text.isdigit()
