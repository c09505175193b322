"""The processes and servers the demo starts, and how it stops them: nothing may outlive the demo."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread

from flask import Flask
from werkzeug.serving import make_server

from devtools.emulator import create_emulator

HINT = "Fix the cause and run it again (`flask --app wsgi demo --keep-running` leaves the servers up)."


class DemoFailed(Exception):
    """A step of the demo went wrong; `log` is the output of the process to look at, `hint` what to do."""

    def __init__(self, message: str, log: Path | None = None, hint: str = HINT) -> None:
        super().__init__(message)
        self.log, self.hint = log, hint


@dataclass
class Children:
    """The processes the demo started, each leading its own process group so its forks stop with it."""

    folder: Path
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `argv` in the demo's folder, its output going to `<name>.log` there."""
        log = self.folder / f"{name.replace(' ', '-')}.log"
        with log.open("wb") as output:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter, with arguments we wrote
                argv, env=env, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.started.append((name, child, log))
        return child

    def log_of(self, name: str) -> Path:
        """Return the log file of the child called `name`."""
        return next(log for started, _, log in self.started if started == name)

    def check(self) -> None:
        """Raise DemoFailed if a child has exited."""
        for name, child, log in self.started:
            if child.poll() is not None:
                hint = "Its log says why; a port in use? Choose another with --port."
                raise DemoFailed(f"the {name} exited with code {child.returncode}", log, hint)

    def stop(self) -> None:
        """Stop every child: SIGTERM to each group, then SIGKILL whatever is left of it after a grace."""
        for _, child, _ in self.started:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        for _, child, _ in self.started:
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            with suppress(ProcessLookupError):  # a fork that outlived its leader, or a leader that hung
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


@dataclass(frozen=True)
class Emulator:
    """The Metered emulator the demo serves: its app, base URL and secret key."""

    app: Flask
    url: str
    secret: str


@contextmanager
def serve_emulator() -> Iterator[Emulator]:
    """Serve the Metered emulator from a thread of this process; stop it afterwards."""
    secret = secrets.token_urlsafe(16)
    app = create_emulator(secret)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        yield Emulator(app, f"http://127.0.0.1:{server.server_port}", secret)
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """Return a TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
