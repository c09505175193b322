"""The notify process: a second RQ SimpleWorker, forked by `python -m workers`, that sends notifications.

A SimpleWorker runs one job at a time, and a send waits on another server (up to its job timeout), so the
sends have a queue and a process of their own: the worker's main process keeps folding while a mail server
hangs. Both live in the Procfile's one `worker` process, so a deployment needs nothing new. The worker's
scheduler thread makes the sends' delayed retries due.

The two stop together: the worker stops the notify process when it exits (in burst mode it waits for it
to empty its queue instead), and a notify process that dies takes the worker down with it, so the
supervisor restarts both rather than leaving mail unsent behind a healthy-looking worker.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from workers.runtime.process import Runtime

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def start_notify_process(
    runtime: Runtime, work: Callable[[Runtime, bool], None], *, burst: bool = False
) -> BaseProcess:
    """Fork the notify process running `work`; it stops with this one (burst: once its queue is empty)."""
    # Forked, not spawned: the child inherits the settings and, in dev, the embedded Redis's address.
    child = multiprocessing.get_context("fork").Process(
        target=_run_child, args=(work, runtime, burst, os.getpid()), name="rollcall-notify"
    )
    child.start()
    stopping = threading.Event()
    atexit.register(_stop, child, stopping, burst)
    if not burst:
        watch = threading.Thread(target=_watch, args=(child, stopping), name="notify-watch", daemon=True)
        watch.start()
    return child


def _run_child(work: Callable[[Runtime, bool], None], runtime: Runtime, burst: bool, parent: int) -> None:
    _stop_with(parent)
    work(runtime, burst)


def _stop_with(parent: int) -> None:
    # A worker killed on its own (SIGKILL to its pid, not its process group) must not leave this process
    # sending behind the back of the worker the supervisor starts next: have the kernel send SIGTERM then.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _stop(child: BaseProcess, stopping: threading.Event, burst: bool) -> None:
    stopping.set()
    if not burst:
        child.terminate()  # SIGTERM: RQ's warm shutdown, which lets a send in progress finish
    child.join()


def _watch(child: BaseProcess, stopping: threading.Event) -> None:
    child.join()
    if not stopping.is_set():
        log.error("the notify process exited (code %s): stopping the worker too", child.exitcode)
        os.kill(os.getpid(), signal.SIGTERM)
