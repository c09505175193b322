"""GET /metrics: parses as Prometheus text, counts what happened, reads no table, and can ask for a token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job
from rq.utils import utcformat
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_worker
from tests.servers import free_port
from tests.test_folding import end, fold, join, start
from tests.test_mailer import Mailbox, smtp_server
from webhooks import runtime_of
from workers import notify_jobs, queueing
from workers.models import Delivery, MeetingSession, Room
from workers.models.base import utcnow
from workers.models.notifications import Notification
from workers.rooms import new_token, token_hash

PROJECT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-scrape-token"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
WEB_COUNTERS = ("rollcall_webhook_deliveries", "rollcall_webhook_duplicates", "rollcall_webhook_rejected")


def scrape(base_url: str, **headers: str) -> Samples:
    """GET /metrics as Prometheus does (no credentials unless given) and parse it with prometheus_client."""
    answer = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"sample repeated: {sample}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def increase(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Return each series' growth between two scrapes (the web counters are per process, not per test)."""
    grown = {labels: v - before.get((name, labels), 0) for labels, v in family(after, name).items()}
    return {labels: v for labels, v in grown.items() if v}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def room_with_token(Db: sessionmaker[Session], name: str = "metrics-room") -> tuple[int, str]:
    token = new_token()
    with Db.begin() as db:
        room = Room(room_name=name, webhook_token_hash=token_hash(token))
        db.add(room)
        db.flush()
        return room.id, token


def post(base_url: str, token: str, event_name: str, participant: str, meeting: str = "m-1") -> int:
    body = {"meetingSessionId": meeting, "participantSessionId": participant, "name": participant}
    url = f"{base_url}/hooks/metered/{token}/{event_name}"
    return httpx.post(url, json=body, timeout=10).status_code


def test_the_exposition_parses_and_declares_every_family(live_app: Callable[..., Any]) -> None:
    with live_app() as (_, base_url):
        answer = httpx.get(f"{base_url}/metrics", timeout=30)
        openmetrics = httpx.get(
            f"{base_url}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            timeout=30,
        )
    kinds = {f.name: f.type for f in text_string_to_metric_families(answer.text)}
    assert kinds == {
        "rollcall_webhook_deliveries": "counter",
        "rollcall_webhook_duplicates": "counter",
        "rollcall_webhook_rejected": "counter",
        "rollcall_webhook_unsignalled": "counter",
        "rollcall_up": "gauge",
        "rollcall_deliveries_folded": "counter",
        "rollcall_notifications": "counter",
        "rollcall_alerts": "counter",
        "rollcall_queue_jobs": "gauge",
        "rollcall_processing_lag_seconds": "gauge",
    }
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.text.endswith("# EOF\n")


def test_counters_show_what_was_posted_rejected_and_folded(live_app: Callable[..., Any], Db: Any) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        _, token = room_with_token(Db)
        _, other_token = room_with_token(Db, "metrics-other-room")
        before = scrape(base_url)
        answers = [post(base_url, token, "participant-joined", p) for p in ("a", "b", "c", "a", "b")]
        answers.append(post(base_url, token, "participant-left", "a"))
        # The same meeting session id from another room: stored, then refused by the fold.
        answers.append(post(base_url, other_token, "participant-joined", "z"))
        answers.append(post(base_url, new_token(), "participant-joined", "d"))
        waiting = scrape(base_url)
        run_worker(runtime)
        after = scrape(base_url)
    assert answers == [202, 202, 202, 200, 200, 202, 202, 404]
    assert increase(before, after, "rollcall_webhook_deliveries_total") == {
        labels(event="participant-joined"): 4,
        labels(event="participant-left"): 1,
    }
    assert increase(before, after, "rollcall_webhook_duplicates_total") == {
        labels(event="participant-joined"): 2
    }
    assert increase(before, after, "rollcall_webhook_rejected_total") == {labels(status="404"): 1}
    assert value(waiting, "rollcall_queue_jobs", queue="rollcall", state="queued") == 1  # one drain for both
    assert family(after, "rollcall_deliveries_folded_total") == {
        labels(event="participant-joined", status="processed"): 3,
        labels(event="participant-joined", status="failed"): 1,
        labels(event="participant-left", status="processed"): 1,
    }
    assert family(after, "rollcall_deliveries_folded_total") == stored_counts(Db)
    assert value(after, "rollcall_queue_jobs", queue="rollcall", state="queued") == 0
    assert value(after, "rollcall_queue_jobs", queue="rollcall-notify", state="failed") == 0
    assert value(after, "rollcall_processing_lag_seconds") == 0


def stored_counts(Db: sessionmaker[Session]) -> dict[frozenset[tuple[str, str]], float]:
    query = select(Delivery.event, Delivery.status, func.count()).group_by(Delivery.event, Delivery.status)
    with Db() as db:
        return {labels(event=e, status=s): n for e, s, n in db.execute(query)}


def test_a_scrape_runs_no_database_query(live_app: Callable[..., Any], Db: Any) -> None:
    statements: list[str] = []
    with live_app() as (app, base_url):
        _, token = room_with_token(Db)
        assert post(base_url, token, "participant-joined", "a") == 202
        run_worker(runtime_of(app))
        event.listen(runtime_of(app).engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert httpx.get(f"{base_url}/readyz", timeout=10).status_code == 200
        assert statements, "the listener sees the app's queries"
        statements.clear()
        samples = scrape(base_url)
    assert (
        value(samples, "rollcall_deliveries_folded_total", event="participant-joined", status="processed")
        == 1
    )
    assert statements == []


def test_processing_lag_is_how_long_the_oldest_queued_job_has_waited(
    live_app: Callable[..., Any], Db: Any
) -> None:
    with live_app() as (app, base_url):
        runtime = runtime_of(app)
        _, token = room_with_token(Db)
        assert post(base_url, token, "participant-joined", "a") == 202
        job = Job.fetch(queueing.DRAIN_JOB_ID, connection=runtime.redis)
        runtime.redis.hset(job.key, "enqueued_at", utcformat(utcnow() - timedelta(hours=1)))
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


def test_notifications_are_counted_by_the_state_send_jobs_move_them_to(
    live_app: Callable[..., Any], Db: Any
) -> None:
    with (
        smtp_server(Mailbox()) as port,
        live_app(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="rollcall@example.com") as (app, base_url),
    ):
        runtime = runtime_of(app)
        room_id, _ = room_with_token(Db)
        fold(runtime.Db, room_id, [[start("m-n", 0), join("m-n", "a1", 0, name="Ann"), end("m-n", 30)]])
        with runtime.Db.begin() as db:
            session_id = db.scalars(select(MeetingSession.id)).one()
            for n, (kind, recipient) in enumerate(
                [("summary", "boss@x.test"), ("thank-you", "nobody@x.test")]
            ):
                db.add(
                    Notification(session_id=session_id, recipient=recipient, kind=kind, message_id=f"m{n}")
                )
        notify_jobs.enqueue_pending(runtime, session_id)
        run_worker(runtime)
        samples = scrape(base_url)
    # The summary is attempted and sent; the thank-you fails before an attempt (not an attendee).
    assert family(samples, "rollcall_notifications_total") == {
        labels(state="sending"): 1,
        labels(state="sent"): 1,
        labels(state="failed"): 1,
    }


def test_metrics_token_refuses_scrapes_without_it(live_app: Callable[..., Any]) -> None:
    with live_app(metrics_token=METRICS_TOKEN) as (_, base_url):
        url = f"{base_url}/metrics"
        refused = [
            httpx.get(url, timeout=10),
            httpx.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10),
            httpx.get(url, auth=("prometheus", METRICS_TOKEN), timeout=10),
        ]
        admitted = scrape(base_url, Authorization=f"Bearer {METRICS_TOKEN}")
    for answer in refused:
        assert answer.status_code == 401
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["status"] == 401
        assert METRICS_TOKEN not in answer.text
    assert value(admitted, "rollcall_up", component="redis") == 1


def test_metrics_answer_when_redis_is_down(live_app: Callable[..., Any]) -> None:
    with live_app(redis_url=f"redis://127.0.0.1:{free_port()}/0") as (_, base_url):
        samples = scrape(base_url)
    assert value(samples, "rollcall_up", component="redis") == 0
    assert family(samples, "rollcall_queue_jobs") == {}


def test_metrics_answer_when_the_database_is_down(live_app: Callable[..., Any]) -> None:
    unreachable = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    with live_app(database_url=unreachable) as (_, base_url):
        samples = scrape(base_url)
    assert value(samples, "rollcall_up", component="redis") == 1
    assert value(samples, "rollcall_queue_jobs", queue="rollcall", state="queued") == 0


@contextmanager
def gunicorn(
    database_url: str, redis_url: str, folder: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve wsgi:app with gunicorn.conf.py and two workers sharing `folder`; yield its URL and process."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "PYTHONPATH": str(PROJECT),
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"]
    server = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: len(web_workers(server)) == 2 and answers(f"{base_url}/healthz"))
        yield base_url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def web_workers(server: subprocess.Popen[bytes]) -> set[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], deadline: float = 60) -> None:
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, "gave up waiting"
        time.sleep(0.1)


@pytest.mark.slow
def test_gunicorn_workers_share_counters_that_survive_a_worker_restart(
    database_url: str, redis_url: str, redis_client: Any, Db: Any, tmp_path: Path
) -> None:
    _, token = room_with_token(Db)
    folder = tmp_path / "prometheus"
    with gunicorn(database_url, redis_url, folder) as (base_url, server):
        assert [post(base_url, token, "participant-joined", p) for p in "abc"] == [202] * 3
        first = web_workers(server)
        for pid in first:
            os.kill(pid, signal.SIGTERM)  # gunicorn starts new workers, which count on from zero
        wait_until(lambda: len(web_workers(server)) == 2 and not web_workers(server) & first)
        assert [post(base_url, token, "participant-joined", p) for p in "defa"] == [202] * 3 + [200]
        samples = scrape(base_url)
    assert value(samples, "rollcall_webhook_deliveries_total", event="participant-joined") == 6
    assert value(samples, "rollcall_webhook_duplicates_total", event="participant-joined") == 1
    with gunicorn(database_url, redis_url, folder) as (base_url, _):
        restarted = scrape(base_url)
    assert value(restarted, "rollcall_webhook_deliveries_total", event="participant-joined") is None
