"""GET /metrics: Prometheus text that parses, counts that match what is stored, no 5xx with Redis down."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests.conftest import run_worker
from tests.servers import free_port
from tests.test_folding import end, fold, join, start, store
from webhooks import runtime_of
from workers import inbox, process
from workers.models import Delivery, MeetingSession, Room
from workers.models.base import utcnow
from workers.models.notifications import Notification
from workers.room_tokens import new_token, token_hash
from workers.runtime import Runtime

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    """Parse Prometheus text, checking every sample line and that its family was declared first."""
    declared: dict[str, set[str]] = {}
    samples: Samples = {}
    assert exposition.endswith("\n")
    for line in exposition.splitlines():
        if line.startswith("# "):
            keyword, name, rest = line[2:].split(" ", 2)
            assert keyword in {"HELP", "TYPE"} and rest
            declared.setdefault(name, set()).add(keyword)
            continue
        found = SAMPLE.match(line)
        assert found, f"not a sample line: {line!r}"
        name, labels, value = found.groups()
        assert declared.get(name) == {"HELP", "TYPE"}, f"{name} sampled before its HELP and TYPE"
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, f"sample repeated: {line!r}"
        samples[key] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def scrape(base_url: str) -> Samples:
    answer = httpx.get(f"{base_url}/metrics", timeout=30)  # no credentials: Prometheus sends none
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.text)


def room_with_token(runtime: Runtime) -> tuple[int, str]:
    token = new_token()
    with runtime.Session.begin() as db:
        room = Room(room_name="metrics-room", webhook_token_hash=token_hash(token))
        db.add(room)
        db.flush()
        return room.id, token


def post_join(base_url: str, token: str, participant: str) -> int:
    body = {"meetingSessionId": "m-1", "participantSessionId": participant, "name": participant}
    return httpx.post(
        f"{base_url}/hooks/metered/{token}/participant-joined", json=body, timeout=10
    ).status_code


def stored_counts(runtime: Runtime) -> dict[frozenset[tuple[str, str]], float]:
    query = select(Delivery.event, Delivery.status, func.count()).group_by(Delivery.event, Delivery.status)
    with runtime.Session() as db:
        return {frozenset({("event", e), ("status", s)}): n for e, s, n in db.execute(query)}


def test_metrics_count_deliveries_queue_depth_duplicates_and_rejections(live_app: Callable[..., Any]) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        process.install(runtime)
        _, token = room_with_token(runtime)
        assert [post_join(base_url, token, p) for p in ("a", "b", "a")] == [202, 202, 200]
        assert post_join(base_url, "not-a-token", "c") == 404
        before = scrape(base_url)
        run_worker(runtime)
        after = scrape(base_url)

    assert family(before, "rollcall_webhook_deliveries") == {
        frozenset({("event", "participant-joined"), ("status", "queued")}): 2
    }
    assert value(before, "rollcall_queue_jobs", queue="rollcall", state="queued") == 1
    assert value(before, "rollcall_webhook_duplicates_total", event="participant-joined") == 1
    assert value(before, "rollcall_webhook_rejected_total", status="404") == 1
    assert value(before, "rollcall_up", component="database") == 1
    assert value(before, "rollcall_up", component="redis") == 1
    assert family(after, "rollcall_webhook_deliveries") == stored_counts(runtime)
    assert value(after, "rollcall_webhook_deliveries", event="participant-joined", status="processed") == 2
    assert value(after, "rollcall_queue_jobs", queue="rollcall", state="queued") == 0
    assert value(after, "rollcall_processing_lag_seconds") == 0


def test_processing_lag_is_the_age_of_the_oldest_unprocessed_delivery(live_app: Callable[..., Any]) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        room_id, _ = room_with_token(runtime)
        store(runtime.Session, room_id, *start("m-old", 0)[:2], utcnow() - timedelta(hours=1))
        store(runtime.Session, room_id, *end("m-old", 60)[:2], utcnow() - timedelta(minutes=5))
        lag = value(scrape(base_url), "rollcall_processing_lag_seconds")
    assert lag is not None and 3600 <= lag < 3700


def test_failed_jobs_are_the_failed_registry(live_app: Callable[..., Any]) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        runtime.queue().enqueue("builtins.int", "not a number")  # raises ValueError in a real worker
        run_worker(runtime)
        samples = scrape(base_url)
    assert value(samples, "rollcall_queue_jobs", queue="rollcall", state="failed") == 1
    assert value(samples, "rollcall_queue_jobs", queue="rollcall", state="queued") == 0


def test_notifications_are_counted_by_channel_and_state(live_app: Callable[..., Any]) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        room_id, _ = room_with_token(runtime)
        fold(runtime.Session, room_id, [[start("m-n", 0), join("m-n", "a1", 0, name="Ann"), end("m-n", 30)]])
        with runtime.Session.begin() as db:
            session_id = db.scalars(select(MeetingSession.id)).one()
            for n, (kind, state) in enumerate(
                [
                    ("summary", "sent"),
                    ("thank-you", "sent"),
                    ("thank-you", "failed"),
                    ("webhook-amended-2", "sent"),
                ]
            ):
                db.add(
                    Notification(
                        session_id=session_id,
                        recipient=f"r{n}@x.test",
                        kind=kind,
                        state=state,
                        message_id=f"m{n}",
                    )
                )
        samples = scrape(base_url)
    assert family(samples, "rollcall_notifications") == {
        frozenset({("channel", "email"), ("state", "sent")}): 2,
        frozenset({("channel", "email"), ("state", "failed")}): 1,
        frozenset({("channel", "webhook"), ("state", "sent")}): 1,
    }


def test_metrics_work_before_the_notifications_table_exists(
    live_app: Callable[..., Any], database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("dropping a table would break the PostgreSQL database the other tests share")
    with live_app() as (app, base_url):
        with runtime_of(app).engine.begin() as connection:
            connection.execute(text("DROP TABLE notifications"))
        samples = scrape(base_url)
    assert family(samples, "rollcall_notifications") == {}
    assert value(samples, "rollcall_up", component="database") == 1


def test_metrics_answer_when_redis_is_down(live_app: Callable[..., Any]) -> None:
    with live_app(redis_url=f"redis://127.0.0.1:{free_port()}/0") as (app, base_url):
        room_id, _ = room_with_token(runtime_of(app))
        runtime = runtime_of(app)
        stored = store(runtime.Session, room_id, *start("m-r", 0)[:2], utcnow())
        assert stored is not None
        inbox.mark_unsignalled(runtime.engine, stored)  # as the receiver does when Redis is down
        samples = scrape(base_url)
    assert value(samples, "rollcall_up", component="redis") == 0
    assert value(samples, "rollcall_up", component="database") == 1
    assert family(samples, "rollcall_queue_jobs") == {}
    assert value(samples, "rollcall_webhook_deliveries", event="meeting-started", status="received") == 1


def test_metrics_answer_when_the_database_is_down(live_app: Callable[..., Any]) -> None:
    unreachable = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    with live_app(database_url=unreachable) as (_, base_url):
        samples = scrape(base_url)
    assert value(samples, "rollcall_up", component="database") == 0
    assert value(samples, "rollcall_up", component="redis") == 1
    assert value(samples, "rollcall_queue_jobs", queue="rollcall", state="queued") == 0
