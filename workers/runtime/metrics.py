"""Runtime: every figure GET /metrics reports, and where each one is counted.

A scrape must cost the same with ten deliveries stored or ten million, so nothing here reads a table:
- What the web process sees (deliveries stored, repeats, rejected requests, deliveries stored while Redis
  was down) are prometheus_client counters, incremented by the receiver. Under gunicorn each web worker
  writes its own file in PROMETHEUS_MULTIPROC_DIR and a scrape sums them (webhooks/metrics_dir.py).
- What the worker process does (deliveries folded, notification moves) is counted in Redis, one HINCRBY
  round-trip per fold batch or notification, so the web process reads it with one HGETALL whichever host
  the worker runs on.
- Queue depth and failed jobs (of the fold and notify queues) and processing lag are read from RQ's own
  keys (LLEN, ZCARD, one job hash).

Resets: the web counters start at zero when the web service starts (gunicorn empties the directory) and
survive one web worker's restart; the Redis counters survive both and reset only if Redis loses its data.
Prometheus's rate() and increase() read a decrease as a counter reset.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from workers.models import DeliveryStatus

# Multiprocess mode (gunicorn) has no `_created` series: leave them out of the single-process one too.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The web process's counters. Each has labels, so no value (and, in multiprocess mode, no file) exists
# until the receiver counts something: importing this module in the worker process writes nothing.
WEB = CollectorRegistry()
STORED = Counter(
    "rollcall_webhook_deliveries",
    "Webhook deliveries stored (repeats not included), by event.",
    ["event"],
    registry=WEB,
)
DUPLICATES = Counter(
    "rollcall_webhook_duplicates", "Repeat deliveries of a stored webhook, by event.", ["event"], registry=WEB
)
REJECTED = Counter(
    "rollcall_webhook_rejected", "Webhook requests refused, by status.", ["status"], registry=WEB
)
UNSIGNALLED = Counter(
    "rollcall_webhook_unsignalled",
    "Deliveries stored while Redis was unreachable, by event: the relay queues them later.",
    ["event"],
    registry=WEB,
)

# The worker process's counters: Redis hashes, field -> count.
FOLDED_KEY = "rollcall:metrics:folded"  # "<event> <status>", status processed or failed
NOTIFICATIONS_KEY = "rollcall:metrics:notifications"  # "<state>" a send job moved a notification to
ALERTS_KEY = "rollcall:metrics:alerts"  # "<alert>": delivery.failed, session.stale


def count_stored(event: str, new: bool) -> None:
    """Count a delivery the receiver stored, or a repeat of one already stored."""
    (STORED if new else DUPLICATES).labels(event).inc()


def count_folded(redis: Redis, folded: Iterable[str], failed: Iterable[str]) -> None:
    """Count a committed batch by event and outcome (the events folded, then failed), in one round-trip."""
    tally = collections.Counter(f"{event} {DeliveryStatus.PROCESSED}" for event in folded)
    tally.update(f"{event} {DeliveryStatus.FAILED}" for event in failed)
    if tally:
        pipeline = redis.pipeline(transaction=False)
        for field, count in tally.items():
            pipeline.hincrby(FOLDED_KEY, field, count)
        _count(pipeline.execute)


def count_failed(redis: Redis, event: str) -> None:
    """Count one delivery marked failed on its own, after its batch failed."""
    _count(lambda: redis.hincrby(FOLDED_KEY, f"{event} {DeliveryStatus.FAILED}", 1))


def count_alert(redis: Redis, alert: str, count: int = 1) -> None:
    """Count alerts raised: deliveries failed for good, or a live session gone silent."""
    _count(lambda: redis.hincrby(ALERTS_KEY, alert, count))


def count_notification(redis: Redis, state: str) -> None:
    """Count a notification a send job moved to `state` (sending = an attempt, pending = a retry)."""
    _count(lambda: redis.hincrby(NOTIFICATIONS_KEY, state, 1))


def _count(increment: Callable[[], object]) -> None:
    # A figure lost to a Redis error must not change what the job does (fail it, skip its follow-ups, or
    # have its retry take a mail never attempted for one that may have gone). Nothing is logged per call:
    # the worker's outage reports, and rollcall_up{component="redis"}, say Redis is away.
    with suppress(RedisError):
        increment()


class RedisFigures:
    """The figures kept in Redis, read at each scrape in a fixed number of round-trips."""

    def __init__(self, fold_queue: Queue, *other_queues: Queue) -> None:
        self.queue, self.queues = fold_queue, (fold_queue, *other_queues)

    def collect(self) -> Iterator[Metric]:
        """Yield rollcall_up{component="redis"}, then the worker's counters and the queue's gauges."""
        up = GaugeMetricFamily(
            "rollcall_up", "Whether a component answered this scrape.", labels=["component"]
        )
        try:
            families = [self._folded(), self._notifications(), self._alerts(), self._jobs(), self._lag()]
        except (RedisError, OSError):
            families = []
        up.add_metric(["redis"], 1 if families else 0)
        yield up
        yield from families

    def _folded(self) -> Metric:
        family = CounterMetricFamily(
            "rollcall_deliveries_folded", "Deliveries folded by the workers, by event and status.",
            labels=["event", "status"],
        )  # fmt: skip
        for field, count in sorted(self.queue.connection.hgetall(FOLDED_KEY).items()):
            family.add_metric(_text(field).split(" ", 1), int(count))
        return family

    def _notifications(self) -> Metric:
        family = CounterMetricFamily(
            "rollcall_notifications",
            "Notifications moved by send jobs, by the state moved to.",
            labels=["state"],
        )
        for state, count in sorted(self.queue.connection.hgetall(NOTIFICATIONS_KEY).items()):
            family.add_metric([_text(state)], int(count))
        return family

    def _alerts(self) -> Metric:
        family = CounterMetricFamily(
            "rollcall_alerts",
            "Alerts raised: deliveries failed for good, live sessions silent for STALE_SESSION_SECONDS.",
            labels=["alert"],
        )
        for alert, count in sorted(self.queue.connection.hgetall(ALERTS_KEY).items()):
            family.add_metric([_text(alert)], int(count))
        return family

    def _jobs(self) -> Metric:
        family = GaugeMetricFamily(
            "rollcall_queue_jobs",
            "RQ jobs by queue and state; state=failed is the failed registry.",
            labels=["queue", "state"],
        )
        # cleanup=False: a scrape only reads; moving expired jobs between registries is the workers' job.
        for queue in self.queues:
            for state, count in (
                ("queued", queue.count),
                ("started", queue.started_job_registry.get_job_count(cleanup=False)),
                ("scheduled", queue.scheduled_job_registry.get_job_count(cleanup=False)),
                ("failed", queue.failed_job_registry.get_job_count(cleanup=False)),
            ):
                family.add_metric([queue.name, state], count)
        return family

    def _lag(self) -> Metric:
        # A room's drain is queued when its first unfolded delivery arrives, so the oldest queued job's
        # wait is about the age of the oldest delivery no worker has started on.
        lag = 0.0
        oldest = self.queue.get_job_ids(0, 1)
        if oldest:
            lag = _waited(self.queue, oldest[0])
        return GaugeMetricFamily(
            "rollcall_processing_lag_seconds", "How long the oldest queued job has waited (0 if none).", lag
        )


def _waited(queue: Queue, job_id: str) -> float:
    try:
        enqueued_at = Job.fetch(job_id, connection=queue.connection).enqueued_at
    except NoSuchJobError:  # ran (or expired) between the two reads
        return 0.0
    if enqueued_at is None:
        return 0.0
    return max((datetime.now(UTC) - enqueued_at.replace(tzinfo=UTC)).total_seconds(), 0.0)


def _text(field: bytes | str) -> str:
    return field.decode() if isinstance(field, bytes) else field
