"""gunicorn reads this from the working directory: the web process refuses to start without Redis."""

from typing import Any

from webhooks import metrics_dir
from workers.settings import load_settings, require_redis


def on_starting(server: Any) -> None:
    """Stop with one line naming REDIS_URL when it is unset (web and worker must share one Redis)."""
    require_redis(load_settings())
    metrics_dir.prepare()  # before any web worker forks: they share one folder of counters


def child_exit(server: Any, worker: Any) -> None:
    """Tidy /metrics after a web worker exits (gunicorn restarts it; what it counted stays counted)."""
    metrics_dir.worker_exited(worker.pid)
