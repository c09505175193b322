"""GET /metrics: the figures of workers.runtime.metrics in Prometheus's text format, without a database query.

Open unless METRICS_TOKEN is set, as Prometheus scrapers expect on a private network: it shows aggregate
counts only (no room names, ids, people or tokens). With METRICS_TOKEN set it needs
`Authorization: Bearer <METRICS_TOKEN>` (Prometheus's `authorization` scrape setting sends it).
A scrape never fails for Redis: with Redis unreachable it reports `rollcall_up{component="redis"} 0`.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from webhooks import metrics_dir, runtime_of
from webhooks.auth import bearer_token, same_token
from webhooks.errors import Problem
from workers.runtime.metrics import WEB, RedisFigures
from workers.runtime.settings import Settings

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    """Report the receiver's and the workers' counters, and the queue's depth, failures and lag."""
    runtime = runtime_of(current_app)
    _check_token(runtime.settings)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(
        encode(Figures(_web_counters(), RedisFigures(runtime.queue(), runtime.notify_queue()))),
        content_type=content_type,
    )


class Figures:
    """Several collectors read as one, in order, for a single exposition."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        """Yield every collector's metric families."""
        for collector in self.collectors:
            yield from collector.collect()


def _web_counters() -> Collector:
    folder = metrics_dir.folder()
    # Under gunicorn every web worker has its own file: sum them all, whichever worker answers the scrape.
    return MultiProcessCollector(None, folder) if folder else WEB  # type: ignore[no-untyped-call]


def _check_token(settings: Settings) -> None:
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if not expected:
        return
    offered = bearer_token()
    if not offered or not same_token(offered, expected):
        raise Problem(
            401,
            "Unauthorized",
            "Send Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="rollcall-metrics"'},
        )
