"""No configured secret reaches a log line, whichever logger writes it."""

from __future__ import annotations

import logging

import pytest

from workers.runtime.log_redaction import REDACTED, install_log_redaction
from workers.runtime.settings import Settings

API_TOKEN = "pure-api-token"


def test_configured_secrets_are_blanked_from_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(_env_file=None, api_token=API_TOKEN, metered_secret_key="pure-metered-secret")
    install_log_redaction(settings)  # as the app and the worker do when they start
    caplog.set_level(logging.DEBUG)
    secret_key = settings.metered_secret_key.get_secret_value()  # type: ignore[union-attr]
    for name in ("rollcall.anything", "gunicorn.error", "rq.worker", ""):
        logging.getLogger(name).warning("calling with %s and %s", API_TOKEN, {"key": secret_key})
    try:
        raise RuntimeError(f"refused secretKey={secret_key}")
    except RuntimeError:
        logging.getLogger("workers.jobs").exception("job failed")
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    assert text.count(REDACTED) >= 9
    assert API_TOKEN not in text and secret_key not in text
