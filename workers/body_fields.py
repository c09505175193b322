"""A webhook body's fields, whatever it was sent as: JSON, a URL-encoded form or multipart form data."""

from __future__ import annotations

import json
import math
import re
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# Deeper bodies are refused: every reader of a stored body (the audit API, a rebuild) must be able to
# decode and encode it again, and Python's json recurses once per level. Metered's bodies are 2-3 deep.
MAX_DEPTH = 32


class BodyError(ValueError):
    """A delivery the receiver refuses: `status` is 400, 415 or 422; `errors` names each bad field."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def media_type(content_type: str) -> str:
    """Return the lower-cased media type of a Content-Type header, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def read_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a JSON or form body into its fields; BodyError 415 or 400 when that is impossible."""
    kind = media_type(content_type)
    if not (JSON_TYPES.match(kind) or kind in FORM_TYPES):
        raise BodyError(415, "Send application/json or form data.")
    try:
        text = body.decode("utf-8")
        if JSON_TYPES.match(kind):
            fields = read_json(text)
        elif kind == "multipart/form-data":
            fields = _multipart_fields(body, content_type)
        else:
            fields = _first_values(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except _Unservable as error:
        raise BodyError(400, f"The body is not accepted: {error}.") from None
    except (ValueError, LookupError):
        raise BodyError(400, f"The body is not valid {'JSON' if 'json' in kind else 'form data'}.") from None
    if not isinstance(fields, dict):
        raise BodyError(422, "The body must be an object.", [{"field": "body", "message": "not an object"}])
    return fields


class _Unservable(ValueError):
    """Valid JSON that could not be served back as JSON: too deep, or a number no double holds."""


def read_json(text: str) -> Any:
    """Decode a JSON text; ValueError if it is not JSON, too deep, or has a number out of a double's range."""
    try:
        value = _JSON.decode(text)
    except RecursionError:
        raise _Unservable(f"nested deeper than {MAX_DEPTH} levels") from None
    # Counting brackets (strings' too) is a bound on the depth that costs far less than walking the value.
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_DEPTH and not _depth_within(value, MAX_DEPTH):
        raise _Unservable(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e400 parses as inf, which json.dumps writes as Infinity: not JSON
        raise _Unservable(f"the number {text[:40]} is out of range")
    return number


# Made once: json.loads would build one per call.
_JSON = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def _depth_within(value: Any, limit: int) -> bool:
    # Iterative, so that checking a deep value cannot itself run out of stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if "\x00" in key:
            raise ValueError("NUL in a field name")
        fields.setdefault(key, value)
    return fields


def _multipart_fields(body: bytes, content_type: str) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("no multipart boundary")
    pairs = []
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(content, bytes):
            pairs.append((name, content.decode("utf-8")))
    return _first_values(pairs)


def canonical_json(fields: Any) -> str:
    """Return one spelling of `fields` whatever the key order or spacing of the body."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
