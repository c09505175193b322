"""Receiver throughput: a bare Flask route vs Rollcall's receiver on SQLite and on PostgreSQL.

Each is served as the Procfile serves the web process (gunicorn, two workers, gunicorn.conf.py's settings;
the baseline gets the same settings through bench.baseline, and GUNICORN_CMD_ARGS reaches both) and loaded
from 16, then 64 connections (bench.load: wrk if installed) with ~600-byte join webhooks, each for a
distinct participant session, so every request is a real insert and a real Redis signal (shared by the
requests a group commit takes together). At each connection count the baseline runs right before the
receivers, so each ratio compares runs seconds apart on this shared box; the load average is printed.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

from bench import load, services

SECONDS = float(os.environ.get("BENCH_SECONDS", 8))
CONNECTIONS = (16, 64)


@dataclass(frozen=True)
class Result:
    label: str
    connections: int
    stats: load.Stats
    baseline_rate: float
    load_average: float  # the box's 1-minute load average when the run ended


def run_all(redis_url: str) -> list[Result]:
    """At each connection count, measure the baseline, then the receiver on each database."""
    results = []
    with ExitStack() as stack:
        sqlite_url = stack.enter_context(services.sqlite_database())
        postgres_url = stack.enter_context(services.postgres_database())
        targets = [("SQLite", sqlite_url), ("PostgreSQL", postgres_url)]
        rooms = {url: services.make_room(url) for _, url in targets if url}
        for connections in CONNECTIONS:
            baseline = _baseline(redis_url, connections)
            results.append(Result("bare Flask 202 (baseline)", connections, baseline, baseline.rate, _load()))
            for database, url in targets:
                if url:
                    stats = receiver(url, redis_url, rooms[url], connections)
                    results.append(
                        Result(f"Rollcall receiver, {database}", connections, stats, baseline.rate, _load())
                    )
    return results


def _load() -> float:
    return os.getloadavg()[0]


def _baseline(redis_url: str, connections: int) -> load.Stats:
    environment = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(services.PROJECT)}
    with services.gunicorn("bench.baseline:app", environment, config="python:bench.baseline") as port:
        target = load.Target(port, "/hooks/metered/t/participant-joined", "r", "r")
        return load.run(target, SECONDS, label="baseline", connections=connections)


def receiver(database_url: str, redis_url: str, room: tuple[int, str], connections: int) -> load.Stats:
    """Load Rollcall's receiver (wsgi:app) on `database_url`, posting to `room` (its id and token)."""
    room_id, token = room
    path = f"/hooks/metered/{token}/participant-joined"
    with services.gunicorn("wsgi:app", services.service_env(database_url, redis_url)) as port:
        target = load.Target(port, path, "bench-room", "bench-metered-id")
        return load.run(target, SECONDS, label=f"receiver-{room_id}-{connections}", connections=connections)


def report(results: list[Result]) -> None:
    """Print req/s, p50, p99, the ratio to the baseline of the same connection count, and the load."""
    print(
        f"  {'':34} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x base':>7} {'load':>5}  statuses"
    )
    for result in results:
        stats = result.stats
        print(
            f"  {result.label:34} {result.connections:5} {stats.rate:8.0f} {stats.p50_ms:8.1f} "
            f"{stats.p99_ms:8.1f} {stats.rate / result.baseline_rate:7.2f} {result.load_average:5.1f}  "
            f"{stats.statuses}"
        )
