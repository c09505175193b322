"""The baseline: a bare Flask route answering 202, served the same way as Rollcall's receiver."""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)


@app.post("/hooks/metered/<token>/<event>")
def receive(token: str, event: str) -> Response:
    """Answer 202 without looking at the request."""
    return Response('{"accepted":true,"id":1}', status=202, mimetype="application/json")
