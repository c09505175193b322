"""The one way Rollcall names what is wrong with a request: a list of {field, message}."""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Return each of pydantic's problems as {field, message}, the field dotted as the client spelled it."""
    return [
        {"field": ".".join(str(part) for part in (*prefix, *item["loc"])) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def summary(errors: list[dict[str, str]]) -> str:
    """Return the problems as one line, for a problem's `detail`."""
    return "; ".join(f"{item['field']}: {item['message']}" for item in errors)
