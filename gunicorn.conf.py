"""gunicorn reads this from the working directory: the web process refuses to start without Redis."""

from typing import Any

from workers.settings import load_settings, require_redis


def on_starting(server: Any) -> None:
    """Stop with one line naming REDIS_URL when it is unset (web and worker must share one Redis)."""
    require_redis(load_settings())
