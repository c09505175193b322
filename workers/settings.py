"""Configuration from the environment (and a `.env` file), read once when a process starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(SystemExit):
    """A bad setting: exits the process with one line naming the variable."""


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
    smtp_url: SecretStr | None = None
    mail_from: str | None = None
    finalize_after_seconds: int = Field(default=120, ge=0)
    stale_session_seconds: int = Field(default=21600, gt=0)
    reconnect_grace_seconds: int = Field(default=30, ge=0)
    demo: bool = False

    @field_validator("api_token", mode="before")
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

    def api_tokens(self) -> tuple[str, ...]:
        """Return the accepted API bearer tokens."""
        return tuple(token.get_secret_value() for token in self.api_token)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problem = error.errors()[0]
        variable = str(problem["loc"][0]).upper() if problem["loc"] else "settings"
        raise ConfigError(f"{variable}: {problem['msg']}") from None


def require_redis(settings: Settings) -> str:
    """Return REDIS_URL for a production entry point, or stop with a clear message."""
    if not settings.redis_url:
        raise ConfigError("REDIS_URL: not set; production processes need a Redis server (redis://host:6379/0)")
    return settings.redis_url
