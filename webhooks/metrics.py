"""GET /metrics in the Prometheus text exposition format (version 0.0.4).

Unauthenticated, as Prometheus scrapers expect on a private network: it shows aggregate counts only (no room
names, ids, people or tokens). Expose it only where your scraper reaches it, or block /metrics at the proxy.
Each component is read on its own, so a scrape never fails: what is unreachable reports `rollcall_up 0`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import Blueprint, Response, current_app
from redis.exceptions import RedisError
from sqlalchemy import Connection, column, func, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

from webhooks import runtime_of
from webhooks.hooks import rejected_counts
from workers.models import Delivery
from workers.models.base import utcnow
from workers.models.inbox import UNPROCESSED
from workers.runtime import QUEUE_NAME, Runtime

blueprint = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EMAIL_KINDS = frozenset({"summary", "thank-you"})
# Named by hand, not imported: /metrics must work before the notifications table (or its model) exists.
_notifications = table("notifications", column("kind"), column("state"))


@dataclass
class Family:
    """One metric: its name, type, help text and samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


@blueprint.get("/metrics")
def metrics() -> Response:
    """Report deliveries, queue depth, processing lag, job failures, notifications and rejected webhooks."""
    runtime = runtime_of(current_app)
    up = Family("rollcall_up", "gauge", "Whether a component answered this scrape (1) or not (0).")
    families = [up]
    for component, collect in (("database", _database_families), ("redis", _redis_families)):
        try:
            families += collect(runtime)
            up.samples.append(({"component": component}, 1))
        except (SQLAlchemyError, RedisError, OSError):
            up.samples.append(({"component": component}, 0))
    return Response(exposition(families), content_type=CONTENT_TYPE)


def _database_families(runtime: Runtime) -> list[Family]:
    with runtime.engine.connect() as connection:
        families = [_deliveries(connection), _duplicates(connection), _lag(connection)]
        if inspect(connection).has_table("notifications"):
            families.append(_notification_family(connection))
    return families


def _deliveries(connection: Connection) -> Family:
    family = Family("rollcall_webhook_deliveries", "gauge", "Stored webhook deliveries by event and status.")
    query = select(Delivery.event, Delivery.status, func.count()).group_by(Delivery.event, Delivery.status)
    for event, status, count in connection.execute(query):
        family.samples.append(({"event": event, "status": status}, count))
    return family


def _duplicates(connection: Connection) -> Family:
    family = Family("rollcall_webhook_duplicates_total", "counter", "Repeat deliveries of a stored webhook.")
    query = select(Delivery.event, func.sum(Delivery.duplicate_count)).group_by(Delivery.event)
    for event, count in connection.execute(query):
        family.samples.append(({"event": event}, count or 0))
    return family


def _lag(connection: Connection) -> Family:
    oldest = connection.scalar(select(func.min(Delivery.received_at)).where(Delivery.status.in_(UNPROCESSED)))
    lag = 0.0 if oldest is None else max((utcnow() - oldest).total_seconds(), 0.0)
    family = Family(
        "rollcall_processing_lag_seconds", "gauge", "Age of the oldest delivery not yet folded (0 if none)."
    )
    family.samples.append(({}, lag))
    return family


def _notification_family(connection: Connection) -> Family:
    family = Family("rollcall_notifications", "gauge", "Post-meeting notifications by channel and state.")
    counts: dict[tuple[str, str], int] = {}
    query = select(_notifications.c.kind, _notifications.c.state, func.count()).group_by(
        _notifications.c.kind, _notifications.c.state
    )
    for kind, state, count in connection.execute(query):
        # Kinds like webhook-amended-<n> are unbounded: label by channel to keep the series few.
        channel = "email" if kind in EMAIL_KINDS else "webhook"
        counts[channel, state] = counts.get((channel, state), 0) + count
    family.samples += [({"channel": c, "state": s}, n) for (c, s), n in sorted(counts.items())]
    return family


def _redis_families(runtime: Runtime) -> list[Family]:
    queue = runtime.queue()
    jobs = Family("rollcall_queue_jobs", "gauge", "RQ jobs by state; state=failed is the failed registry.")
    # cleanup=False: a scrape only reads; moving expired jobs between registries is the workers' job.
    for state, count in (
        ("queued", queue.count),
        ("started", queue.started_job_registry.get_job_count(cleanup=False)),
        ("scheduled", queue.scheduled_job_registry.get_job_count(cleanup=False)),
        ("failed", queue.failed_job_registry.get_job_count(cleanup=False)),
    ):
        jobs.samples.append(({"queue": QUEUE_NAME, "state": state}, count))
    rejected = Family("rollcall_webhook_rejected_total", "counter", "Webhook requests refused, by status.")
    rejected.samples += [({"status": str(code)}, n) for code, n in sorted(rejected_counts(runtime).items())]
    return [jobs, rejected]


def exposition(families: Iterable[Family]) -> str:
    """Render metric families as Prometheus text: HELP, TYPE, then one `name{labels} value` per sample."""
    lines: list[str] = []
    for family in families:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for labels, value in family.samples:
            lines.append(f"{family.name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
