"""The worker process: `python -m workers` (the Procfile's `worker`).

It runs an RQ `SimpleWorker`, and from a thread of its own RQ's scheduler (which runs the delayed retries
and finalizes) and the periodic jobs of PERIODIC through rq's cron facility; it relays once at start-up so
a crash leaves nothing stranded.

Why SimpleWorker: the default `rq worker` forks a work-horse per job, so every job pays a fork, fresh
imports and a new database connection (about 3 jobs/s measured here); a SimpleWorker runs jobs in its own
process and keeps its engine's pooled connections, and one drain job folds a whole room's backlog in
batches, so one process folds thousands of deliveries a second. What it gives up: a job that crashes the
interpreter takes the worker down with it (the supervisor restarts it; the rows are still unprocessed, so
the start-up relay picks them up), and a job timeout is enforced with SIGALRM in-process. Scale out by
running more worker processes: the per-room lock keeps them off each other's rooms.

Notifications are sent by a second SimpleWorker in a process of its own, forked at start: a send waits on
another server (up to its job timeout), so the sends have a queue and a process of their own and the main
process keeps folding while a mail server hangs. Both live in the Procfile's one `worker` process, so a
deployment needs nothing new; the main process's scheduler thread makes the sends' delayed retries due.
The two stop together: the worker stops the notify process when it exits (in burst mode it waits for it
to empty its queue instead), and a notify process that dies takes the worker down with it, so the
supervisor restarts both rather than leaving mail unsent behind a healthy-looking worker.

Outages of Redis or the database, at start-up or later, are waited out (see workers.runtime.connections):
the process exits only when told to, or on a configuration error.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.job import Job
from rq.scheduler import RQScheduler
from sqlalchemy.exc import ArgumentError

# Imported here, before any job runs, so the first job does not pay for them.
from workers import folding, inbox, jobs, queueing  # noqa: F401
from workers.deliveries import parsing  # noqa: F401
from workers.runtime import migrate, process
from workers.runtime.connections import (
    DATABASE,
    MAX_DELAY_SECONDS,
    REDIS,
    TRANSIENT,
    Outages,
    is_outage,
    refusal,
)
from workers.runtime.log_redaction import install_log_redaction
from workers.runtime.process import NOTIFY_QUEUE_NAME, QUEUE_NAME, Runtime
from workers.runtime.settings import ConfigError, Settings, load_settings, require_redis

log = logging.getLogger("workers")

INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"  # where the web app keeps its SQLite file
PR_SET_PDEATHSIG = 1  # prctl(2): the signal the notify process gets when its parent dies

# Every periodic job, with its interval in seconds: the one place to add one.
PERIODIC: list[tuple[Callable[..., Any], int]] = [
    (jobs.relay, 30),
    (jobs.sweep_stale_sessions, 300),  # STALE_SESSION_SECONDS is hours: every 5 minutes is plenty
    (jobs.finalize_overdue, 60),  # a finalize whose schedule was lost, or that failed for good
    (jobs.purge_expired_bodies, 3600),  # RETENTION_DAYS is days: hourly keeps a body at most an hour over
    (jobs.seal_closed_days, 3600),  # a day is sealed within the hour after it closes
]


def main(argv: list[str] | None = None) -> None:
    """Run the worker until it is told to stop."""
    options = _parse(argv)
    _stop_on_signals()
    configure_logging()
    settings = load_settings()
    install_log_redaction(settings)  # before anything logs: no secret or room token in the worker's log
    if not (options.embedded or settings.demo):
        require_redis(settings)
    outages = Outages()
    runtime = start_runtime(settings, outages)
    # Sends wait on other servers: they have a process of their own, so folds never wait for mail.
    start_notify_process(runtime, work_notifications, burst=options.burst)
    if not options.burst:
        start_schedulers(runtime, outages)
    log.info("worker ready, pid %s, queue %s", os.getpid(), QUEUE_NAME)
    work(runtime, outages, runtime.queue(), burst=options.burst)


def work_notifications(runtime: Runtime, burst: bool) -> None:
    """Work the notification queue in the notify process, waiting out outages as the folds do."""
    process.install(runtime)  # the fork emptied the engine's pool (start_runtime's at-fork hook)
    work(runtime, Outages(logging.getLogger("workers.notify_process")), runtime.notify_queue(), burst=burst)


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
    atexit.register(_stop_notify_process, child, stopping, burst)
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


def _stop_notify_process(child: BaseProcess, stopping: threading.Event, burst: bool) -> None:
    stopping.set()
    if not burst:
        child.terminate()  # SIGTERM: RQ's warm shutdown, which lets a send in progress finish
    child.join()


def _watch(child: BaseProcess, stopping: threading.Event) -> None:
    child.join()
    if not stopping.is_set():
        log.error("the notify process exited (code %s): stopping the worker too", child.exitcode)
        os.kill(os.getpid(), signal.SIGTERM)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run Rollcall's RQ worker.")
    parser.add_argument("--embedded", action="store_true", help="allow an embedded Redis (dev and demo)")
    parser.add_argument("--burst", action="store_true", help="quit once the queue is empty")
    return parser.parse_args(argv)


class _QuietOutage(logging.Filter):
    # RQ logs each failed try to reach Redis, and a traceback when its loop dies of one; the worker's
    # Outages report each outage once instead.
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return "could not connect to Redis" not in str(record.msg) and not isinstance(error, TRANSIENT)


def configure_logging() -> None:
    """Log at INFO: one line per drain batch and per outage, not RQ's four lines per job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    rq_worker = logging.getLogger("rq.worker")
    rq_worker.setLevel(logging.WARNING)  # its INFO lines are per job: dequeued, Job OK, result kept
    rq_worker.addFilter(_QuietOutage())
    # A Redis restart makes the scheduler re-acquire its lock with a warning: the outage is logged already.
    logging.getLogger("rq.scheduler").setLevel(logging.ERROR)
    logging.getLogger("rq.cron").setLevel(logging.WARNING)


def start_runtime(settings: Settings, outages: Outages) -> Runtime:
    """Create this process's Runtime, once its services answer, and bind the jobs to it."""
    try:
        runtime = Runtime.start(settings, INSTANCE_PATH)
    except (ArgumentError, ImportError):  # their messages may repeat the URL, password and all
        raise ConfigError("DATABASE_URL: no database driver for this URL's scheme") from None
    outages.wait_until(lambda: _ready(runtime))
    # A child must never reuse the parent's database sockets: drop them there without closing them.
    os.register_at_fork(after_in_child=lambda: runtime.engine.dispose(close=False))
    process.install(runtime)
    return runtime


def _ready(runtime: Runtime) -> None:
    """Check the schema, reach Redis, and signal whatever a crash left unprocessed."""
    try:
        _check_services(runtime.settings, runtime)
    except TRANSIENT as error:
        refused = refusal(error)
        if refused is not None:
            raise refused from None  # the error's own text may hold the URL
        raise
    jobs.relay_rooms(runtime, None)


def _check_services(settings: Settings, runtime: Runtime) -> None:
    if settings.database_url is None:  # the dev default SQLite file: bring its schema up as the web app does
        migrate.upgrade_locked(settings.resolved_database_url(INSTANCE_PATH), INSTANCE_PATH)
    elif not migrate.is_current(settings.database_url):
        raise ConfigError(
            "DATABASE_URL: the schema is not at the latest migration; run `flask --app wsgi db upgrade`"
        )
    runtime.redis.ping()


class RollcallWorker(SimpleWorker):
    """RQ's in-process worker, telling the process's Outages when Redis or the database comes and goes."""

    # RQ's own backoff while it cannot reach Redis between jobs: doubling, capped like ours.
    exponential_backoff_factor = 2.0
    max_connection_wait_time = MAX_DELAY_SECONDS
    outages: Outages
    stop_requested = False

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Extend the worker's registration, noting whether Redis answered."""
        try:
            super().heartbeat(timeout, pipeline)
        except TRANSIENT as error:
            self.outages.lost(error)
            raise
        if pipeline is None:  # a pipeline's commands have not reached Redis yet
            self.outages.back(REDIS)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """Tell the Outages of a job failed by an outage, in place of RQ's traceback for each such job."""
        error = exc_info[1]
        if is_outage(error):
            self.outages.lost(error)  # the job's retry and the relay fold its room once the service is back
            return
        super().handle_exception(job, *exc_info)

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        """Record the job's success: every job reads the database, so it is reachable."""
        super().handle_job_success(job, *args, **kwargs)
        self.outages.back(DATABASE)

    def request_stop(self, signum: Any, frame: Any) -> None:
        """Stop after the current job (SIGTERM, SIGINT), and do not start again."""
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def work(runtime: Runtime, outages: Outages, queue: Queue, *, burst: bool = False) -> None:
    """Work `queue` until told to stop; whenever Redis fails under RQ's loop, wait for it and go on."""
    while True:
        worker = RollcallWorker([queue], connection=runtime.redis, log_job_description=False)
        worker.outages = outages
        try:
            worker.work(burst=burst, with_scheduler=burst)  # in burst mode, due retries are enqueued once
        except TRANSIENT as error:
            outages.lost(error)
        if worker.stop_requested or burst:
            return
        _stop_on_signals()
        outages.wait_until(runtime.redis.ping)
        time.sleep(1)  # an RQ loop that failed for another reason must not spin


def _stop_on_signals() -> None:
    # Outside RQ's loop no job runs: a stop request (SIGTERM, SIGINT) may end the process at once.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def _stop(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def start_schedulers(runtime: Runtime, outages: Outages) -> None:
    """Run RQ's scheduler and the PERIODIC jobs from a daemon thread of this process."""
    scheduler = RQScheduler(
        [QUEUE_NAME, NOTIFY_QUEUE_NAME], connection=runtime.redis, logging_level=logging.ERROR
    )
    cron = CronScheduler(connection=runtime.redis, name=f"rollcall-worker-{os.getpid()}")
    for function, interval in PERIODIC:
        cron.register(function, QUEUE_NAME, interval=interval, job_timeout=300, result_ttl=60)
    threading.Thread(
        target=_run_schedulers, args=(scheduler, cron, outages), name="rollcall-schedulers", daemon=True
    ).start()


def _run_schedulers(scheduler: RQScheduler, cron: CronScheduler, outages: Outages) -> None:
    # Their own start() methods fork or install signal handlers (which only the main thread may): this is
    # their loop, in a thread, so an outage costs a pause here rather than a dead scheduler process.
    born = False  # registered in Redis; again after an outage, in case Redis restarted empty
    while True:
        try:
            if not born:
                scheduler.register_birth()
                cron.register_birth()
                born = True
            if scheduler.should_reacquire_locks:
                scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            scheduler.heartbeat()  # type: ignore[no-untyped-call]
            scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            if cron.enqueue_jobs():
                cron.save()
            cron.heartbeat()
        except TRANSIENT as error:
            born = False
            time.sleep(outages.lost(error))
            continue
        outages.back(REDIS)
        time.sleep(scheduler.interval)


if __name__ == "__main__":
    main()
