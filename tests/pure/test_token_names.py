"""API_TOKEN and READ_TOKEN entries: `name:secret` names a token, anything else is a secret alone."""

from __future__ import annotations

import pytest

from workers.runtime.log_redaction import secret_values
from workers.runtime.settings import Settings, named_token


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("ops:s3cret", ("ops", "s3cret")),
        ("lms-2.prod:a:b", ("lms-2.prod", "a:b")),  # the first colon ends the name
        ("s3cret", ("", "s3cret")),
        (":s3cret", ("", ":s3cret")),  # no name before the colon: all of it is the secret
        ("two words:s3cret", ("", "two words:s3cret")),
        ("x" * 33 + ":s3cret", ("", "x" * 33 + ":s3cret")),  # a name is at most 32 characters
    ],
)
def test_an_entry_splits_into_name_and_secret(entry: str, named: tuple[str, str]) -> None:
    assert named_token(entry) == named


def test_settings_give_names_and_secrets_and_redact_only_secrets() -> None:
    settings = Settings(api_token="ops:secret-one-123, secret-two-456", read_token="lms:secret-three-789")
    assert settings.named_api_tokens() == (("ops", "secret-one-123"), ("", "secret-two-456"))
    assert settings.named_read_tokens() == (("lms", "secret-three-789"),)
    assert settings.api_tokens() == ("secret-one-123", "secret-two-456")
    assert {"secret-one-123", "secret-two-456", "secret-three-789"} <= set(secret_values(settings))
    assert "ops" not in secret_values(settings)
