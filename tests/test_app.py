"""The app factory, problem+json errors, authentication and readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask import Flask

from webhooks import create_app
from workers.settings import ConfigError, Settings, load_settings


def test_healthz_answers_ok(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_and_redis(app: Flask) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_unreachable(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(redis_url="redis://127.0.0.1:9/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["checks"] == {"database": "ok", "redis": "unreachable"}
    assert "redis" in response.json["detail"]


def test_unknown_route_is_problem_json(app: Flask) -> None:
    response = app.test_client().get("/nope")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(response.json)


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONNECT_GRACE_SECONDS", "-4")
    with pytest.raises(ConfigError, match=r"^RECONNECT_GRACE_SECONDS: "):
        load_settings(_env_file=None)


def test_api_tokens_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "old-token, new-token")
    assert load_settings(_env_file=None).api_tokens() == ("old-token", "new-token")


def test_secret_settings_stay_out_of_repr() -> None:
    settings = Settings(_env_file=None, metered_secret_key="s3cr3t-value", api_token="tok3n-value")  # type: ignore[call-arg]
    assert "s3cr3t-value" not in repr(settings)
    assert "tok3n-value" not in repr(settings)


def test_database_url_defaults_to_instance_sqlite(tmp_path: Any) -> None:
    url = Settings(_env_file=None).resolved_database_url(tmp_path)  # type: ignore[call-arg]
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
