"""The app factory, problem+json errors, authentication and readiness."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from flask import Flask

from tests.conftest import PROJECT
from webhooks import create_app
from workers.runtime.settings import Settings


def test_healthz_answers_ok(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_and_redis(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_unreachable(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(redis_url="redis://127.0.0.1:9/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["checks"] == {"database": "ok", "redis": "unreachable"}
    assert "redis" in problem["detail"]


def test_unknown_route_is_problem_json(app: Flask) -> None:
    response = app.test_client().get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(response.get_json())


def test_live_server_speaks_http(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200


def test_gunicorn_refuses_to_start_without_redis(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'web.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "REDIS_URL: not set" in done.stderr


def test_the_served_app_never_imports_devtools(tmp_path: Path, redis_url: str) -> None:
    """The emulator and the demo stay out of gunicorn's app: only their own commands import devtools."""
    script = (
        "import sys, wsgi; wsgi.app.test_client().get('/healthz'); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'devtools'))"
    )
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite'}", "REDIS_URL": redis_url}
    served = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert served.returncode == 0, served.stderr
    assert served.stdout.splitlines()[-1] == "[]"
