"""Receiver throughput: a bare Flask route vs Rollcall's receiver on SQLite and on PostgreSQL.

Each is served as the Procfile serves the web process (gunicorn, two gevent workers, gunicorn.conf.py's
settings; the baseline gets the same settings through bench.baseline) and loaded from 16 connections
(bench.load: wrk if installed) with ~600-byte join webhooks, each for a distinct participant session, so
every request is a real insert and a real Redis round-trip.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

from bench import load, services

SECONDS = float(os.environ.get("BENCH_SECONDS", 8))


@dataclass(frozen=True)
class Result:
    label: str
    stats: load.Stats


def run_all(redis_url: str) -> list[Result]:
    """Measure the baseline, then the receiver on each database, side by side."""
    results = [Result("bare Flask 202 (baseline)", _baseline(redis_url))]
    with ExitStack() as stack:
        sqlite_url = stack.enter_context(services.sqlite_database())
        results.append(Result("Rollcall receiver, SQLite", receiver(sqlite_url, redis_url)))
        postgres_url = stack.enter_context(services.postgres_database())
        if postgres_url:
            results.append(Result("Rollcall receiver, PostgreSQL", receiver(postgres_url, redis_url)))
    return results


def _baseline(redis_url: str) -> load.Stats:
    environment = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(services.PROJECT)}
    with services.gunicorn("bench.baseline:app", environment, config="python:bench.baseline") as port:
        return load.run(
            load.Target(port, "/hooks/metered/t/participant-joined", "r", "r"), SECONDS, label="baseline"
        )


def receiver(database_url: str, redis_url: str) -> load.Stats:
    """Load Rollcall's receiver (wsgi:app) on `database_url`."""
    room_id, token = services.make_room(database_url)
    target = load.Target(0, f"/hooks/metered/{token}/participant-joined", "bench-room", "bench-metered-id")
    with services.gunicorn("wsgi:app", services.service_env(database_url, redis_url)) as port:
        return load.run(
            load.Target(port, target.path, target.room_name, target.room_id),
            SECONDS,
            label=f"receiver-{room_id}",
        )


def report(results: list[Result]) -> None:
    """Print req/s, p50, p99 and the ratio to the baseline."""
    baseline = results[0].stats.rate
    print(f"  {'':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x base':>7}  statuses")
    for result in results:
        stats = result.stats
        print(
            f"  {result.label:34} {stats.rate:8.0f} {stats.p50_ms:8.1f} "
            f"{stats.p99_ms:8.1f} {stats.rate / baseline:7.2f}  {stats.statuses}"
        )
