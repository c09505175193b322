"""The Metered REST API client: rooms, with timeouts, typed errors and a secret key that never leaks."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from workers.runtime.settings import ConfigError, Settings

log = logging.getLogger(__name__)

RETRIES = 2  # idempotent calls only: a create sent twice could make two rooms
BACKOFF_SECONDS = 0.2
RETRY_STATUSES = frozenset({502, 503, 504})


class MeteredError(Exception):
    """Metered refused or failed a call; `message` is Metered's own words."""

    def __init__(self, status: int | None, message: str, event_code: str | None = None) -> None:
        super().__init__(f"Metered answered {status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.event_code = event_code


class MeteredNotFound(MeteredError):
    """Metered has no such room (404, or a message saying it was not found)."""


class MeteredTimeout(MeteredError):
    """Metered did not answer within the timeout."""


class MeteredUnavailable(MeteredError):
    """Metered could not be reached."""


class MeteredNotConfigured(MeteredUnavailable):
    """METERED_APP_NAME/METERED_API_URL or METERED_SECRET_KEY is missing."""


class _SecretKeyTransport(httpx.BaseTransport):
    """Add `secretKey` to the query at the last moment, so httpx's logs and errors never see it."""

    def __init__(self, secret_key: SecretStr, inner: httpx.BaseTransport) -> None:
        self._secret_key = secret_key
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_merge_params({"secretKey": self._secret_key.get_secret_value()})
        signed = httpx.Request(
            request.method, url, headers=request.headers, stream=request.stream, extensions=request.extensions
        )
        return self._inner.handle_request(signed)

    def close(self) -> None:
        self._inner.close()

    def __repr__(self) -> str:
        return "_SecretKeyTransport(secretKey=[redacted])"


class MeteredClient:
    """Metered's room endpoints; use as a context manager so the connection pool is closed."""

    def __init__(self, base_url: str, secret_key: str, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        # SecretStr, so that even a dump of the object's attributes (a debugger, an error tracker) hides it.
        self._secret_key = SecretStr(secret_key)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_seconds,
            follow_redirects=False,
            headers={"Accept": "application/json"},
            transport=_SecretKeyTransport(self._secret_key, httpx.HTTPTransport()),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MeteredClient:
        """Build a client from METERED_API_URL/METERED_APP_NAME and METERED_SECRET_KEY."""
        try:
            base_url = settings.metered_base_url()
        except ConfigError as error:
            raise MeteredNotConfigured(None, f"Metered is not configured ({error})") from None
        if settings.metered_secret_key is None:
            raise MeteredNotConfigured(None, "Metered is not configured (METERED_SECRET_KEY: not set)")
        return cls(base_url, settings.metered_secret_key.get_secret_value(), settings.metered_timeout_seconds)

    def __enter__(self) -> MeteredClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MeteredClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def create_room(self, options: dict[str, Any]) -> dict[str, Any]:
        """Create a room (never retried) and return Metered's room object."""
        return self._object(self._call("POST", "/room", options))

    def get_room(self, room_name: str) -> dict[str, Any]:
        """Return Metered's room object for `room_name`."""
        return self._object(self._call("GET", _room_path(room_name)))

    def list_rooms(self) -> list[dict[str, Any]]:
        """Return every room of the app."""
        rooms = self._call("GET", "/rooms")
        if not isinstance(rooms, list):
            raise MeteredError(200, "Metered's room list is not a JSON array")
        return rooms

    def update_room(self, room_name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Send `changes` to Metered's update API and return its answer."""
        return self._object(self._call("PUT", _room_path(room_name), changes))

    def delete_room(self, room_name: str) -> dict[str, Any]:
        """Archive the room at Metered (Metered's delete is a soft delete)."""
        return self._object(self._call("DELETE", _room_path(room_name)))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        attempts = 1 if method == "POST" else 1 + RETRIES
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(method, path, body)
            except MeteredError as error:
                transient = isinstance(error, MeteredTimeout | MeteredUnavailable) or (
                    error.status in RETRY_STATUSES
                )
                if attempt == attempts or not transient:
                    raise
                log.warning("metered %s %s failed (%s); retrying", method, path, type(error).__name__)
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _attempt(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        failure: MeteredError | None = None
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            failure = MeteredTimeout(None, f"Metered did not answer within {self.timeout_seconds:g} s")
        except httpx.HTTPError as error:
            failure = MeteredUnavailable(None, f"Metered could not be reached ({type(error).__name__})")
        if failure is not None:
            # Raised outside the `except` so no httpx exception (which holds the request) rides along.
            raise failure
        log.info("metered %s %s -> %s", method, path, response.status_code)
        return self._decode(response)

    def _decode(self, response: httpx.Response) -> Any:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success and not (isinstance(payload, dict) and payload.get("success") is False):
            if payload is None:
                raise MeteredError(response.status_code, "Metered's answer is not JSON")
            return payload
        message = self._redact(_message_of(payload, response))
        code = payload.get("eventCode") if isinstance(payload, dict) else None
        event_code = str(code) if code is not None else None
        if response.status_code == 404 or "not found" in message.lower():
            raise MeteredNotFound(response.status_code, message, event_code)
        raise MeteredError(response.status_code, message, event_code)

    def _redact(self, text: str) -> str:
        # Metered never echoes the key as far as anyone knows; this makes sure of it.
        secret = self._secret_key.get_secret_value()
        return text.replace(secret, "[redacted]") if secret else text

    @staticmethod
    def _object(payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise MeteredError(200, "Metered's answer is not a JSON object")
        return payload


def _room_path(room_name: str) -> str:
    return f"/room/{quote(room_name, safe='')}"


def _message_of(payload: Any, response: httpx.Response) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    text = response.text.strip()[:200]
    return text or response.reason_phrase or "no message"
