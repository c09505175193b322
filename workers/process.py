"""The Runtime of this process, for RQ jobs: installed by the worker, or built from the environment."""

from __future__ import annotations

import os

from workers.runtime import Runtime
from workers.settings import load_settings

_runtime: Runtime | None = None
_pid: int | None = None


def install(runtime: Runtime) -> None:
    """Make `runtime` the one jobs in this process use (the worker entry point and tests call this)."""
    global _runtime, _pid
    _runtime, _pid = runtime, os.getpid()


def current() -> Runtime:
    """Return this process's Runtime, building it from the environment on first use or after a fork."""
    if _runtime is None or _pid != os.getpid():
        # A forked child must not reuse its parent's pooled connections: build its own engine.
        install(Runtime.start(load_settings()))
    assert _runtime is not None
    return _runtime
