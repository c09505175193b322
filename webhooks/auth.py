"""Bearer-token authentication for the management API (HTTP Basic for the HTML pages)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, request

from webhooks.errors import Problem

P = ParamSpec("P")
R = TypeVar("R")


def _token_accepted(candidate: str) -> bool:
    runtime = current_app.extensions["rollcall"]
    tokens = runtime.settings.api_tokens()
    # Check every token so the time taken does not tell which one nearly matched.
    matches = [hmac.compare_digest(candidate.encode(), token.encode()) for token in tokens]
    return any(matches)


def _demo_open() -> bool:
    settings = current_app.extensions["rollcall"].settings
    return settings.demo and not settings.api_tokens()


def require_token(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse the call with 401 unless it carries `Authorization: Bearer <API_TOKEN>`."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _demo_open():
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token or not _token_accepted(token.strip()):
                raise Problem(
                    401,
                    "Unauthorized",
                    "Send Authorization: Bearer <API_TOKEN>.",
                    headers={"WWW-Authenticate": 'Bearer realm="rollcall"'},
                )
        return view(*args, **kwargs)

    return wrapper


def require_basic(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse an HTML page with 401 unless HTTP Basic carries the API token as its password."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _demo_open():
            credentials = request.authorization
            password = credentials.password if credentials else None
            if not password or not _token_accepted(password):
                raise Problem(
                    401,
                    "Unauthorized",
                    "Log in with the API token as the password.",
                    headers={"WWW-Authenticate": 'Basic realm="rollcall"'},
                )
        return view(*args, **kwargs)

    return wrapper
