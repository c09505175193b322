"""The Metered emulator's state: its rooms, the requests it received, and the failures it was told to give.

Both of the emulator's blueprints (devtools.emulator's room API and devtools.emulator_meeting's control
surface) read it from the app, and both answer errors in Metered's shape, so it lives apart from either.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Flask, Response, jsonify


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the emulated API (the secret key itself is not kept)."""

    method: str
    path: str
    json: Any
    secret_ok: bool


@dataclass
class Failure:
    """An answer to give instead of the real one, `times` times, to calls matching method and path."""

    method: str
    path: str
    status: int
    body: dict[str, Any]
    times: int = 1


@dataclass
class EmulatorState:
    """The emulator's rooms, the requests it received and the failures it was told to give."""

    secret_key: str = field(repr=False)
    app_id: str
    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, method: str, path: str, status: int, body: dict[str, Any], times: int = 1) -> None:
        """Make the next `times` calls to `method path` answer `status` with `body`."""
        with self.lock:
            self.failures.append(Failure(method.upper(), path, status, body, times))

    def clear(self) -> None:
        """Forget the recorded requests and pending failures (the rooms stay)."""
        with self.lock:
            self.requests.clear()
            self.failures.clear()

    def reset(self) -> None:
        """Forget everything: rooms, recorded requests and pending failures."""
        self.clear()
        with self.lock:
            self.rooms.clear()

    def take_failure(self, method: str, path: str) -> Failure | None:
        """Return (and use up once) the failure set for `method path`, if any."""
        with self.lock:
            for failure in self.failures:
                if failure.method == method and failure.path == path:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    return failure
        return None


def emulator_state(app: Flask) -> EmulatorState:
    """Return the state of an emulator app built by create_emulator."""
    state: EmulatorState = app.extensions["metered_emulator"]
    return state


def metered_error(status: int, message: str) -> tuple[Response, int]:
    """Answer in Metered's documented error shape."""
    if status >= 500:
        return jsonify(eventCode="INTERNAL_ERROR", message=message), status
    return jsonify(success=False, message=message), status


def recorded(app: Flask) -> list[dict[str, Any]]:
    """Return the requests the emulator received, oldest first, as plain dicts."""
    state = emulator_state(app)
    with state.lock:
        return [asdict(item) for item in state.requests]
