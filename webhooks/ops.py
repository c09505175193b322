"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from webhooks import runtime_of
from webhooks.errors import Problem
from workers.wire import Health, Readiness

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Answer 200 while the process is up."""
    return jsonify(Health(status="ok").answer())


@blueprint.get("/readyz")
def readyz() -> Response:
    """Answer 200 when the database and Redis both answer; 503 naming the one that does not."""
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    if not all(checks.values()):
        down = [name for name, ok in checks.items() if not ok]
        raise Problem(
            503,
            "Not ready",
            f"unreachable: {', '.join(down)}",
            checks={name: "ok" if ok else "unreachable" for name, ok in checks.items()},
        )
    return jsonify(Readiness(status="ready", checks={name: "ok" for name in checks}).answer())


def _database_ok() -> bool:
    try:
        with runtime_of(current_app).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _redis_ok() -> bool:
    try:
        return bool(runtime_of(current_app).redis.ping())
    except Exception:
        return False
