"""The Metered emulator served over real HTTP, as a pytest fixture.

Bring the fixtures `emulator` and `served_emulator` into a test module (or conftest) by importing
`emulator_fixture` and `served_emulator_fixture`, and point the app at the emulator with
`make_settings(metered_api_url=emulator.url, metered_secret_key=EMULATOR_SECRET)`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from devtools.emulator import create_emulator
from devtools.emulator_state import EmulatorState, emulator_state, recorded
from tests.servers import serving

EMULATOR_SECRET = "emulator-secret-5f2c9a7e1d"


@dataclass
class RunningEmulator:
    """A served emulator: `url` is Metered's /api/v1 base, `base` the server's root."""

    app: Flask
    base: str
    url: str
    secret: str

    @property
    def state(self) -> EmulatorState:
        return emulator_state(self.app)

    def requests(self) -> list[dict[str, Any]]:
        """Return every request the emulated API received: method, path, json, secret_ok."""
        return recorded(self.app)

    def room(self, name: str) -> dict[str, Any]:
        """Return the room as the emulator stores it."""
        return self.state.rooms[name]


@pytest.fixture(scope="session", name="served_emulator")
def served_emulator_fixture() -> Iterator[RunningEmulator]:
    """Serve one Metered emulator on loopback for the whole run (stopping a server costs half a second)."""
    app = create_emulator(EMULATOR_SECRET, app_id="61005767f41008463845bac0")
    with serving(app) as base:
        yield RunningEmulator(app, base, f"{base}/api/v1", EMULATOR_SECRET)


@pytest.fixture(name="emulator")
def emulator_fixture(served_emulator: RunningEmulator) -> RunningEmulator:
    """Return the served emulator, emptied: no rooms, no recorded requests, no pending failures."""
    served_emulator.state.reset()
    return served_emulator


@dataclass
class SilentServer:
    """A TCP server that accepts connections and never answers: Metered hanging."""

    url: str
    accepted: list[socket.socket]


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    """Serve on loopback a socket that accepts and then sleeps; yield its /api/v1 URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    server = SilentServer(f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1", [])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with suppress(TimeoutError):
                server.accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in server.accepted:
            connection.close()
        listener.close()
