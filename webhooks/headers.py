"""Headers on every answer: nothing cached (reports hold personal data), no sniffing; a CSP on pages."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g

# Pages are server-rendered with no script; their one stylesheet is inline and carries the request's nonce.
# Their forms post only back here.
PAGE_POLICY = (
    "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def register(app: Flask) -> None:
    """Add the headers to every response, and `csp_nonce` to every template."""
    app.after_request(_add_headers)
    app.context_processor(lambda: {"csp_nonce": csp_nonce()})


def csp_nonce() -> str:
    """Return this request's nonce for inline styles (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    nonce: str = g.csp_nonce
    return nonce


def _add_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_POLICY.format(nonce=csp_nonce())
        # same-origin, not no-referrer: under no-referrer a browser sends a form's POST with `Origin: null`,
        # and webhooks.csrf could not tell the room page's forms from another site's.
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
