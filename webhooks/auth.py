"""Who may call what: API_TOKEN for everything, READ_TOKEN for reading reports and pages only.

The API takes `Authorization: Bearer <token>`; the HTML pages take the token as the password of HTTP Basic.
A read-only token is refused (403) by every change and by room management, so the people who only read
attendance never hold the credential that creates rooms, replays deliveries or rebuilds sessions.
A token configured as `name:secret` is named: the management audit records its changes as `api:<name>`.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, g, request

from webhooks.errors import Problem
from workers.audit import API_ACTOR
from workers.runtime.settings import UNNAMED_TOKEN

P = ParamSpec("P")
R = TypeVar("R")

# The blueprints whose GET views are reports: a read-only token may see them. Not the export: it hands
# out every raw body, header and source address in bulk, which is the full token's to give.
READABLE_BLUEPRINTS = frozenset({"reports", "audit", "audit_records", "pages", "roster", "series", "seals"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
# POSTs that change nothing a report shows: starting a verify queues a job that only reads.
READABLE_POSTS = frozenset({"seals.start_verification"})


class Access(enum.Enum):
    """What a credential may do."""

    NONE = 0
    READ = 1
    FULL = 2


def _access_of(candidate: str) -> tuple[Access, str]:
    """Return what `candidate` may do, and the name of the token it matched."""
    settings = current_app.extensions["rollcall"].settings
    # Compare with every token so the time taken does not tell which one nearly matched, or which kind.
    full = [name for name, token in settings.named_api_tokens() if same_token(candidate, token)]
    read = [name for name, token in settings.named_read_tokens() if same_token(candidate, token)]
    if full:
        return Access.FULL, full[0]
    return (Access.READ, read[0]) if read else (Access.NONE, UNNAMED_TOKEN)


def api_actor() -> str:
    """Return the audit actor of this request: `api:<token name>`, or `api` for an unnamed token."""
    name: str = g.get("token_name", UNNAMED_TOKEN)
    return f"{API_ACTOR}:{name}" if name else API_ACTOR


def same_token(candidate: str, token: str) -> bool:
    """Compare a token offered with one configured, in time that does not depend on where they differ."""
    return hmac.compare_digest(candidate.encode(), token.encode())


def bearer_token() -> str | None:
    """Return the token of the request's `Authorization: Bearer <token>`, None without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _demo_open() -> bool:
    settings = current_app.extensions["rollcall"].settings
    return settings.demo and not settings.api_tokens()


def _check(candidate: str | None, unauthorized: Problem) -> None:
    access, g.token_name = _access_of(candidate) if candidate else (Access.NONE, UNNAMED_TOKEN)
    if access is Access.NONE:
        raise unauthorized
    readable = request.method in _SAFE_METHODS and request.blueprint in READABLE_BLUEPRINTS
    if access is Access.READ and not (readable or request.endpoint in READABLE_POSTS):
        raise Problem(403, "Forbidden", "A read-only token cannot do this; use the API token.")


def require_token(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse the call with 401 unless it carries `Authorization: Bearer <token>` (403 if it is read-only)."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _demo_open():
            _check(
                bearer_token(),
                Problem(
                    401,
                    "Unauthorized",
                    "Send Authorization: Bearer <API_TOKEN>.",
                    headers={"WWW-Authenticate": 'Bearer realm="rollcall"'},
                ),
            )
        return view(*args, **kwargs)

    return wrapper


def require_basic(view: Callable[P, R]) -> Callable[P, R]:
    """Refuse an HTML page with 401 unless HTTP Basic carries a token (API or read-only) as its password."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _demo_open():
            credentials = request.authorization
            _check(
                credentials.password if credentials else None,
                Problem(
                    401,
                    "Unauthorized",
                    "Log in with the API token or a read-only token as the password.",
                    headers={"WWW-Authenticate": 'Basic realm="rollcall"'},
                ),
            )
        return view(*args, **kwargs)

    return wrapper
