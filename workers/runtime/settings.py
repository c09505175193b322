"""Runtime: configuration from the environment (and a `.env` file), read once when a process starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(SystemExit):
    """A bad setting: exits the process with one line naming the variable."""


# `name:secret` names a token for the audit; a secret that merely holds a colon has no such prefix.
_TOKEN_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):(.+)", re.DOTALL)
UNNAMED_TOKEN = ""  # the name of a token given without `name:`; the audit records its actor as plain `api`


def named_token(entry: str) -> tuple[str, str]:
    """Split a token entry into its name and its secret: `ops:s3cret` -> ("ops", "s3cret")."""
    named = _TOKEN_NAME.fullmatch(entry)
    return (named[1], named[2]) if named else (UNNAMED_TOKEN, entry)


class Settings(BaseSettings):
    """Every variable of the contract's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str | None = None
    redis_url: str | None = None
    metered_app_name: str | None = None
    metered_api_url: str | None = None
    metered_secret_key: SecretStr | None = None
    metered_timeout_seconds: float = Field(default=10.0, gt=0)
    public_base_url: str = "http://127.0.0.1:5000"
    api_token: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    read_token: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    smtp_url: SecretStr | None = None
    mail_from: str | None = None
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    # How long a send waits on each step of an SMTP conversation or webhook call before trying again later.
    notify_timeout_seconds: float = Field(default=15.0, gt=0)
    # Deliveries folded per transaction. A batch costs its deliveries plus one read of each session it
    # touches (workers.folding), so a backlog is cheapest in few, large batches; a smaller one holds the
    # room's row lock for less time and less memory.
    fold_batch_size: int = Field(default=50_000, ge=1)
    finalize_after_seconds: int = Field(default=120, ge=0)
    stale_session_seconds: int = Field(default=21600, gt=0)
    reconnect_grace_seconds: int = Field(default=30, ge=0)
    # How long a drain lets a room's deliveries gather before folding them: latency traded for fewer folds.
    drain_gather_seconds: float = Field(default=1.0, ge=0, le=10)
    # Long enough for a meeting under way when its room is archived to finish, and for late retries.
    archive_grace_seconds: int = Field(default=14400, ge=0, le=366 * 86400)
    token_overlap_seconds: int = Field(default=86400, ge=0, le=366 * 86400)
    # Raw bodies and headers older than this many days are purged (workers.retention); unset: kept for ever.
    retention_days: int | None = Field(default=None, ge=1)
    metrics_token: SecretStr | None = None  # unset (or empty): GET /metrics is open
    demo: bool = False

    @field_validator("api_token", "read_token", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("public_base_url", "metered_api_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(value)
            except ArgumentError:  # its message repeats the URL, password and all
                raise ValueError(
                    "not a database URL (e.g. postgresql+psycopg://user@host/db or sqlite:///path/file)"
                ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("notify_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _readable_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from workers.notifications.senders import parse_smtp_url

            try:
                parse_smtp_url(value.get_secret_value())
            except ValueError as error:  # its message never repeats the URL, which holds a password
                raise ValueError(str(error).removeprefix("SMTP_URL: ")) from None
        return value

    @field_validator("notify_webhook_secret")
    @classmethod
    def _usable_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from workers.notifications.senders import signing_key

            signing_key(value.get_secret_value())  # its messages never repeat the secret
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.notify_webhook_url and not self.notify_webhook_secret:
            raise ValueError("NOTIFY_WEBHOOK_SECRET: required when NOTIFY_WEBHOOK_URL is set")
        return self

    def resolved_database_url(self, instance_path: str | Path) -> str:
        """Return DATABASE_URL, or a SQLite file in the instance folder."""
        if self.database_url:
            return self.database_url
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(instance_path).resolve() / 'rollcall.sqlite'}"

    def metered_base_url(self) -> str:
        """Return Metered's API base URL, or raise ConfigError naming what is missing."""
        if self.metered_api_url:
            return self.metered_api_url
        if self.metered_app_name:
            return f"https://{self.metered_app_name}.metered.live/api/v1"
        raise ConfigError("METERED_APP_NAME: not set (or set METERED_API_URL)")

    def named_api_tokens(self) -> tuple[tuple[str, str], ...]:
        """Return the accepted API bearer tokens, each as (name, secret)."""
        return tuple(named_token(token.get_secret_value()) for token in self.api_token)

    def named_read_tokens(self) -> tuple[tuple[str, str], ...]:
        """Return the read-only tokens (reports and pages, never a change), each as (name, secret)."""
        return tuple(named_token(token.get_secret_value()) for token in self.read_token)

    def api_tokens(self) -> tuple[str, ...]:
        """Return the accepted API bearer tokens' secrets."""
        return tuple(secret for _, secret in self.named_api_tokens())

    def read_tokens(self) -> tuple[str, ...]:
        """Return the read-only tokens' secrets."""
        return tuple(secret for _, secret in self.named_read_tokens())


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problem = error.errors(include_url=False, include_input=False)[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:  # a rule across variables names its variable in the message
            raise ConfigError(message) from None
        raise ConfigError(f"{str(problem['loc'][0]).upper()}: {message}") from None


def require_redis(settings: Settings) -> str:
    """Return REDIS_URL for a production entry point, or stop with a clear message."""
    if not settings.redis_url:
        raise ConfigError(
            "REDIS_URL: not set; production processes need a Redis server (redis://host:6379/0)"
        )
    return settings.redis_url
