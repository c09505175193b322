"""A request id on every request: the client's `X-Request-Id` when usable, else one made here.

It is echoed in the answer's `X-Request-Id` header and recorded on every audit record the request adds,
so a change can be traced from a client's log to the audit and back.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from workers.audit import current_request_id

HEADER = "X-Request-Id"
# Bounded (the audit column holds 64 characters) and printable ASCII without spaces, so it can be logged
# and sent back in a header as it came.
_USABLE = re.compile(r"[\x21-\x7e]{1,64}")


def register(app: Flask) -> None:
    """Give every request an id, and echo it in every answer."""
    app.before_request(_start)
    app.after_request(_echo)
    app.teardown_request(_end)


def _start() -> None:
    offered = request.headers.get(HEADER, "")
    # An unusable id is replaced, not refused: a webhook from Metered must never fail over a header.
    g.request_id = offered if _USABLE.fullmatch(offered) else uuid.uuid4().hex
    g.request_id_token = current_request_id.set(g.request_id)


def _echo(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response


def _end(_error: BaseException | None) -> None:
    # Popped: a streamed answer (stream_with_context) tears its request down once more when it ends.
    token = g.pop("request_id_token", None)
    if token is not None:
        current_request_id.reset(token)
