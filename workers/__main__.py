"""The worker process: `python -m workers` (the Procfile's `worker`).

It runs an RQ `SimpleWorker` with RQ's scheduler (which runs the delayed retries), plus the periodic jobs
of PERIODIC through rq's cron facility, and relays once at start-up so a crash leaves nothing stranded.

Why SimpleWorker: the default `rq worker` forks a work-horse per job, so every job pays a fork, fresh
imports and a new database connection (about 3 jobs/s measured here); a SimpleWorker runs jobs in its own
process and keeps its engine's pooled connections, and one drain job folds a whole room's backlog in
batches, so one process folds thousands of deliveries a second. What it gives up: a job that crashes the
interpreter takes the worker down with it (the supervisor restarts it; the rows are still unprocessed, so
the start-up relay picks them up), and a job timeout is enforced with SIGALRM in-process. Scale out by
running more worker processes: the per-room lock keeps them off each other's rooms.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.cron import CronScheduler

# Imported here, before any job runs, so the first job does not pay for them.
from workers import folding, inbox, jobs, migrate, payloads, process, queueing, session_jobs  # noqa: F401
from workers.notify_worker import start_notify_process
from workers.runtime import QUEUE_NAME, Runtime
from workers.settings import ConfigError, Settings, load_settings, require_redis

log = logging.getLogger("workers")

INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"  # where the web app keeps its SQLite file

# Every periodic job, with its interval in seconds: the one place to add one.
PERIODIC: list[tuple[Callable[..., Any], int]] = [
    (jobs.relay, 30),
    (session_jobs.sweep_stale_sessions, 300),  # STALE_SESSION_SECONDS is hours: every 5 minutes is plenty
    (session_jobs.finalize_overdue, 60),  # a finalize whose schedule was lost, or that failed for good
]


def main(argv: list[str] | None = None) -> None:
    """Run the worker until it is told to stop."""
    options = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings()
    if not (options.embedded or settings.demo):
        require_redis(settings)
    runtime = start_runtime(settings)
    try:
        runtime.redis.ping()
    except RedisError as error:
        raise ConfigError(f"REDIS_URL: cannot reach Redis ({type(error).__name__})") from None
    jobs.relay_rooms(runtime, None)  # whatever a crash left unprocessed, signal it now
    runtime.engine.dispose()  # RQ's scheduler forks next: hand it an empty pool
    start_notify_process(runtime, burst=options.burst)  # sends in a process of their own: folds never wait
    if not options.burst:
        start_periodic(runtime)
    worker = SimpleWorker([runtime.queue()], connection=runtime.redis)
    worker.work(burst=options.burst, with_scheduler=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run Rollcall's RQ worker.")
    parser.add_argument("--embedded", action="store_true", help="allow an embedded Redis (dev and demo)")
    parser.add_argument("--burst", action="store_true", help="quit once the queue is empty")
    return parser.parse_args(argv)


def start_runtime(settings: Settings) -> Runtime:
    """Create this process's Runtime and bind the jobs to it; a forked child gets a fresh pool."""
    runtime = Runtime.start(settings, INSTANCE_PATH)
    if settings.database_url is None:  # the dev default SQLite file: bring its schema up as the web app does
        migrate.upgrade_locked(settings.resolved_database_url(INSTANCE_PATH), INSTANCE_PATH)
    elif not migrate.is_current(settings.database_url):
        raise ConfigError(
            "DATABASE_URL: the schema is not at the latest migration; run `flask --app wsgi db upgrade`"
        )
    # A child must never reuse the parent's database sockets: drop them there without closing them.
    os.register_at_fork(after_in_child=lambda: runtime.engine.dispose(close=False))
    process.install(runtime)
    return runtime


def start_periodic(runtime: Runtime) -> CronScheduler:
    """Enqueue each PERIODIC job on its interval, from a daemon thread of this process."""
    cron = CronScheduler(connection=runtime.redis, name=f"rollcall-worker-{os.getpid()}")
    for function, interval in PERIODIC:
        cron.register(function, QUEUE_NAME, interval=interval, job_timeout=300, result_ttl=60)
    threading.Thread(target=_run_cron, args=(cron,), name="rollcall-cron", daemon=True).start()
    return cron


def _run_cron(cron: CronScheduler) -> None:
    # CronScheduler.start() installs signal handlers, which only the main thread may; this is its loop.
    cron.register_birth()
    while True:
        try:
            if cron.enqueue_jobs():
                cron.save()
            cron.heartbeat()
            pause = cron.calculate_sleep_interval()
        except RedisError as error:
            log.warning("periodic jobs: Redis unavailable (%s); trying again", type(error).__name__)
            pause = 5
        time.sleep(max(pause, 1))


if __name__ == "__main__":
    main()
