"""PROMETHEUS_MULTIPROC_DIR: where gunicorn's web workers keep their counters, summed at each scrape.

gunicorn.conf.py calls these in the master process. prometheus_client picks its storage once, when it is
first imported, from this variable; so the master sets it before anything imports prometheus_client (this
module imports it only in worker_exited), and every web worker it forks then writes to the folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """Set PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder if unset) and empty it; return the folder."""
    if VARIABLE not in os.environ and "prometheus_client" in sys.modules:
        raise RuntimeError(f"{VARIABLE}: prometheus_client was imported first (preload_app?); set it instead")
    folder = os.environ.get(VARIABLE)
    if not folder:
        folder = os.environ[VARIABLE] = tempfile.mkdtemp(prefix="rollcall-metrics-")
        atexit.register(_remove, folder, os.getpid())
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):  # the last run's counts: this run's start from zero
        stale.unlink()
    return folder


def _remove(folder: str, master_pid: int) -> None:
    if os.getpid() == master_pid:  # forked web workers inherit this handler; only the master removes it
        shutil.rmtree(folder, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Drop an exited web worker's live gauges; its counts stay, since what it counted did happen."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def folder() -> str | None:
    """Return the multiprocess folder when this process is one of several web workers, else None."""
    return os.environ.get(VARIABLE) or None
