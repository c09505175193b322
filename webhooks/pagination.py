"""Keyset pagination: `limit` and an opaque `cursor` in, `nextCursor` out."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import request

from webhooks.errors import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # the largest id any of our databases stores


@dataclass(frozen=True)
class Page:
    """The requested page: at most `limit` items after the item whose id is `after`."""

    limit: int
    after: int | None


def requested_page() -> Page:
    """Read `limit` and `cursor` from the query string, refusing bad values with 422."""
    errors = []
    limit = DEFAULT_LIMIT
    raw_limit = request.args.get("limit")
    if raw_limit is not None:
        if not _whole_number(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            errors.append({"field": "limit", "message": f"must be a whole number from 1 to {MAX_LIMIT}"})
        else:
            limit = int(raw_limit)
    after = None
    raw_cursor = request.args.get("cursor")
    if raw_cursor:
        after = _decode(raw_cursor)
        if after is None:
            errors.append({"field": "cursor", "message": "is not a cursor this API gave out"})
    if errors:
        raise Problem(
            422,
            "Validation failed",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )
    return Page(limit, after)


def page_body(
    rows: Sequence[T], page: Page, show: Callable[[T], Any], id_of: Callable[[T], int]
) -> dict[str, Any]:
    """Return the list answer from up to limit+1 rows: `items` and `nextCursor` (null on the last page)."""
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    return {"items": [show(row) for row in shown], "nextCursor": _encode(id_of(shown[-1])) if more else None}


def _encode(item_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{item_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "id" and _whole_number(number) and int(number) <= MAX_ID else None


def _whole_number(text: str) -> bool:
    # str.isdigit() alone accepts "²", which int() refuses.
    return text.isascii() and text.isdigit()
