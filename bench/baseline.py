"""The baseline: a bare Flask route answering 202, served the same way as Rollcall's receiver.

Also its gunicorn configuration (`gunicorn -c python:bench.baseline`): the serving settings of the
project's gunicorn.conf.py (worker class, connections, access log), read from that file so the two cannot
drift, without its start-up hooks, which need Rollcall's app.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from flask import Flask, Response

_PROCFILE_CONFIG = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
worker_class: str = _PROCFILE_CONFIG["worker_class"]
worker_connections: int = _PROCFILE_CONFIG["worker_connections"]
accesslog: str | None = _PROCFILE_CONFIG["accesslog"]
control_socket_disable = True  # the conf's hook that names it per instance is not run here

app = Flask(__name__)


@app.post("/hooks/metered/<token>/<event>")
def receive(token: str, event: str) -> Response:
    """Answer 202 without looking at the request."""
    return Response('{"accepted":true,"id":1}', status=202, mimetype="application/json")
