"""Settings from the environment: each bad one stops start-up naming its variable, never its secret."""

from __future__ import annotations

from typing import Any

import pytest

from workers.metered import MeteredClient, MeteredNotConfigured
from workers.runtime.settings import ConfigError, Settings, load_settings


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


def test_from_settings_needs_an_address_and_a_key() -> None:
    no_key = Settings(_env_file=None, metered_api_url="http://127.0.0.1:9/api/v1")
    with pytest.raises(MeteredNotConfigured, match="METERED_SECRET_KEY"):
        MeteredClient.from_settings(no_key)
    no_address = Settings(_env_file=None, metered_secret_key="k")
    with pytest.raises(MeteredNotConfigured, match="METERED_APP_NAME"):
        MeteredClient.from_settings(no_address)
    named = Settings(_env_file=None, metered_app_name="acme", metered_secret_key="k")
    with MeteredClient.from_settings(named) as metered:
        assert metered.base_url == "https://acme.metered.live/api/v1"
