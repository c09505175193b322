"""gunicorn reads this from the working directory: how the web process serves, and what it checks at start.

gevent workers: each connection is a greenlet, so clients that send half a request and wait (slow networks,
or on purpose) hold only a greenlet, not a worker (sync) or a thread (gthread, whose thread blocks once a
request has begun to arrive). They also keep many requests in flight in a worker, which the receiver's
group commit needs (workers/receiving.py: its lock and condition are gevent's once gevent has patched the
worker). Kept over gthread by measurement (issue 14, README "Benchmarks"): with the group commit, gthread
(32 threads) answered about 1.2x as many webhooks at 16 connections (within the runs' spread) and 1.5-1.9x
fewer at 64, and bare Flask runs about 1.7x slower under it. psycopg (3.1.14 on) waits on PostgreSQL
cooperatively under gevent, so a group forms while its leader waits for the commit; a SQLite statement
holds the worker for its ~0.1 ms instead.
"""

import hashlib
import os
from typing import Any

from webhooks import metrics_dir
from workers.runtime.log_redaction import install_log_redaction
from workers.runtime.settings import load_settings, require_redis

worker_class = "gevent"
worker_connections = 1000  # per worker: open connections, idle or slow ones included
accesslog = "-"  # on stdout, redacted like every other log line (room tokens ride in webhook paths)


def on_starting(server: Any) -> None:
    """Stop with one line naming REDIS_URL when it is unset (web and worker must share one Redis)."""
    settings = load_settings()
    require_redis(settings)
    install_log_redaction(settings)
    _own_control_socket(server)
    metrics_dir.prepare()  # before any web worker forks: they share one folder of counters


def child_exit(server: Any, worker: Any) -> None:
    """Tidy /metrics after a web worker exits (gunicorn restarts it; what it counted stays counted)."""
    metrics_dir.worker_exited(worker.pid)


def post_worker_init(worker: Any) -> None:
    """Warn in each worker's log when the database's schema is behind the migrations."""
    # Here and not at import of the app: `flask db upgrade` builds the same app and must not warn. Not in
    # the master either: importing the database driver before gevent patches the worker would block it.
    from webhooks import runtime_of
    from workers.runtime.migrate import warn_if_behind

    runtime = runtime_of(worker.wsgi)
    if runtime.settings.database_url and not runtime.settings.demo:
        warn_if_behind(runtime.settings.database_url)


def _own_control_socket(server: Any) -> None:
    # gunicorn's default control socket is one path per user: a second instance on this host would take it
    # over from the first. Name it after the bound ports instead, in the same folder.
    setting = server.cfg.settings["control_socket"]
    if server.cfg.control_socket_disable or setting.value != setting.default:
        return
    folder = os.path.dirname(setting.default)
    server.cfg.set("control_socket", os.path.join(folder, f"gunicorn-{_bind_label(server.cfg.bind)}.ctl"))


def _bind_label(addresses: list[str]) -> str:
    ports = [address.rpartition(":")[2] for address in addresses if not address.startswith(("unix:", "fd:"))]
    if ports and all(port.isdigit() for port in ports):
        return "-".join(ports)
    return hashlib.sha256(",".join(addresses).encode()).hexdigest()[:12]
