"""The app factory, problem+json errors, authentication and readiness."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.conftest import PROJECT
from webhooks import create_app
from workers.runtime.settings import ConfigError, Settings, load_settings


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


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONNECT_GRACE_SECONDS", "-4")
    with pytest.raises(ConfigError, match=r"^RECONNECT_GRACE_SECONDS: "):
        load_settings(_env_file=None)


def test_api_tokens_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "old-token, new-token")
    assert load_settings(_env_file=None).api_tokens() == ("old-token", "new-token")


def test_secret_settings_stay_out_of_repr() -> None:
    settings = Settings(_env_file=None, metered_secret_key="s3cr3t-value", api_token="tok3n-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "tok3n-value" not in repr(settings)


def test_database_url_defaults_to_instance_sqlite(tmp_path: Any) -> None:
    url = Settings(_env_file=None).resolved_database_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'rollcall.sqlite'}"


def test_live_server_speaks_http(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200


def test_webhook_url_without_its_secret_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "https://example.test/hooks")
    with pytest.raises(
        ConfigError, match=r"^NOTIFY_WEBHOOK_SECRET: required when NOTIFY_WEBHOOK_URL is set$"
    ):
        load_settings(_env_file=None)


def test_unreadable_smtp_url_names_the_variable_not_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_URL", "ftp://user:hunter2-secret@mail.example.test")
    with pytest.raises(ConfigError, match=r"^SMTP_URL: ") as raised:
        load_settings(_env_file=None)
    assert "hunter2-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "nonsense-with-s3cret", "not a database URL"),
        ("REDIS_URL", "http://127.0.0.1:6379", "must be a redis://, rediss:// or unix:// URL"),
    ],
)
def test_bad_service_urls_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"^{variable}: ") as raised:
        load_settings(_env_file=None)
    assert message in str(raised.value) and "s3cret" not in str(raised.value)


def test_gunicorn_refuses_to_start_without_redis(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'web.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "REDIS_URL: not set" in done.stderr


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("whsec_", "the signing key is empty"),
        ("whsec_=", "not base64 after whsec_"),
        ("whsec_s3cr3t!!", "not base64 after whsec_"),
        ("whsec_a", "not base64 after whsec_"),
    ],
)
def test_an_unusable_webhook_secret_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, secret: str, message: str
) -> None:
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "https://hooks.example/rollcall")
    monkeypatch.setenv("NOTIFY_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None)
    assert str(raised.value) == f"NOTIFY_WEBHOOK_SECRET: {message}"


def test_a_webhook_secret_without_base64_padding_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "https://hooks.example/rollcall")
    monkeypatch.setenv("NOTIFY_WEBHOOK_SECRET", "whsec_aGVsbG8")  # "hello", its "=" left off
    assert load_settings(_env_file=None).notify_webhook_secret is not None


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
