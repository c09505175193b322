"""`make bench` (`python -m bench`): the receiver against a bare Flask baseline, then the worker side.

Every service is started fresh for the run (redis-server, a SQLite file, a throwaway PostgreSQL database
on BENCH_POSTGRES_URL's server, gunicorn) and stopped after. Bounded: about two minutes in all.
BENCH_SECONDS (load window, default 8) and BENCH_DELIVERIES (backlog size, default 20000) tune it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from bench import baseline, drain, load, receiver, services

# Further benchmarks, each run as `python -m <module>` after these (e.g. "bench.rebuild").
MORE: list[str] = [
    "bench.meeting",
    "bench.rebuild",
    "bench.metrics",
    "bench.pages",
    "bench.scaling",
    "bench.live",
]


def main() -> None:
    """Run every comparison and print the figures."""
    print(
        f"Rollcall benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, gunicorn "
        f"{baseline.worker_class} x2 (gunicorn.conf.py), {' and '.join(map(str, receiver.CONNECTIONS))} "
        f"connections from {'wrk' if load.WRK else 'the Python generator (no wrk)'}"
    )
    with services.redis_server() as redis_url:
        print("\nReceiver (POST ~600-byte JSON, a distinct participant session each):")
        receiver.report(receiver.run_all(redis_url))
        print("\nWorker (one `python -m workers` process, SimpleWorker, per-room drain jobs):")
        results = []
        with services.sqlite_database() as sqlite_url:
            results.append(_labelled(drain.backlog(sqlite_url, redis_url), "SQLite"))
        with services.postgres_database() as postgres_url:
            if postgres_url:
                results.append(_labelled(drain.backlog(postgres_url, redis_url), "PostgreSQL"))
        with services.sqlite_database() as sqlite_url:
            results.append(_labelled(drain.live(sqlite_url, redis_url, receiver.SECONDS), "SQLite"))
        drain.report(results)
    for module in MORE:
        subprocess.run([sys.executable, "-m", module], check=False)  # noqa: S603 - modules named above


def _labelled(result: drain.Drained, database: str) -> drain.Drained:
    return drain.Drained(
        f"{result.label}, {database}", result.deliveries, result.seconds, result.wall_seconds
    )


if __name__ == "__main__":
    main()
