"""Live traffic over many rooms (issue 12): 40 rooms of rolling meetings through the receiver, one worker.

Each room plays meeting after meeting: a start, 20-60 people joining, a tenth of them dropping and
rejoining, everyone leaving, the end, then the next meeting. Two processes of eight threads post the rooms'
deliveries through the real receiver (gunicorn, gunicorn.conf.py) on keep-alive connections, each as soon
as the last was answered, for BENCH_LIVE_SECONDS (default 30); one `python -m workers` process folds them.
Figures: deliveries posted per second; fold latency (received_at to processed_at, from the inbox's own
columns); the worker's CPU-seconds (utime + stime of its process tree, /proc) per 1,000 deliveries from
the start of the load until the last is folded; RQ jobs the worker ran; fold transactions (one log line
each); rooms the relay had to signal.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rq import Worker
from sqlalchemy import select

from bench import drain, load, services
from workers.models import Delivery
from workers.runtime.connections import make_engine
from workers.timefmt import iso_ms

SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", 30))
ROOMS = 40
PEOPLE = (20, 60)
PROCESSES, THREADS = 2, 8
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
# Issue 12's goals, on PostgreSQL: every delivery folded within this, at this CPU cost or less.
LATENCY_GOAL_SECONDS = 2.0
CPU_GOAL = 1.0  # worker CPU-seconds per 1,000 deliveries
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Live:
    database: str
    posted: int
    statuses: dict[int, int]
    seconds: float
    latencies: list[float]  # seconds from received_at to processed_at, each delivery
    cpu_seconds: float
    jobs: int
    folds: int  # fold transactions (the worker's log line per batch)
    relayed: int  # rooms the worker's relay signalled (its start-up relay included)


def meetings(room: int, rng: random.Random) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield (event, body) of one room's meetings, one after another, forever."""
    clock = T0 + timedelta(days=room)
    for number in range(1_000_000):
        meeting = {"meetingSessionId": f"live-{room}-{number}"}
        yield "meeting-started", {**meeting, "startTime": iso_ms(clock)}
        people = rng.randint(*PEOPLE)
        steps = [(person, 0, 5) for person in range(people)]  # (person, stay, seconds later): joins
        for person in rng.sample(range(people), people // 10):  # a drop and a rejoin
            steps += [(person, 0, 30), (person, 1, 10)]
        steps += [(person, -1, 5) for person in range(people)]  # everyone leaves, from their last stay
        seen: set[tuple[int, int]] = set()
        for person, stay, seconds in steps:
            clock += timedelta(seconds=seconds)
            stay = stay if stay >= 0 else int((person, 1) in seen)
            leaving = (person, stay) in seen
            seen.add((person, stay))
            event, field = ("participant-left", "leftTime") if leaving else ("participant-joined", "joinTime")
            yield event, {**meeting, **_who(room, number, person, stay), field: iso_ms(clock)}
        yield "meeting-ended", {**meeting, "endTime": iso_ms(clock + timedelta(seconds=1))}
        clock += timedelta(minutes=5)


def _who(room: int, number: int, person: int, stay: int) -> dict[str, object]:
    return {
        "participantSessionId": f"{room}-{number}-{person}-{stay}",
        "externalUserId": f"user-{room}-{person}",
        "name": f"Person {person} of room {room}",
        "email": f"person-{room}-{person}@example.com",
    }


def _sender(port: int, rooms: list[tuple[int, str]], until: float, statuses: dict[int, int]) -> None:
    # A room's deliveries go in order from one thread, round robin over the thread's rooms.
    scripts = [(token, meetings(room, random.Random(room))) for room, token in rooms]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.perf_counter() < until:
        for token, script in scripts:
            event, body = next(script)
            connection.request(
                "POST",
                f"/hooks/metered/{token}/{event}",
                json.dumps(body).encode(),
                {"Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            answer.read()
            statuses[answer.status] = statuses.get(answer.status, 0) + 1


def _process(args: tuple[int, list[tuple[int, str]], float]) -> dict[int, int]:
    port, rooms, seconds = args
    until = time.perf_counter() + seconds
    counts: list[dict[int, int]] = [{} for _ in range(THREADS)]
    threads = [
        threading.Thread(target=_sender, args=(port, rooms[n::THREADS], until, counts[n]))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total: dict[int, int] = {}
    for count in counts:
        for status, n in count.items():
            total[status] = total.get(status, 0) + n
    return total


def post(port: int, rooms: list[tuple[int, str]], seconds: float) -> dict[int, int]:
    """Post every room's meetings for `seconds` from PROCESSES x THREADS connections; return statuses."""
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        parts = pool.map(_process, [(port, rooms[p::PROCESSES], seconds) for p in range(PROCESSES)])
    statuses: dict[int, int] = {}
    for part in parts:
        for status, count in part.items():
            statuses[status] = statuses.get(status, 0) + count
    return statuses


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of `pid` and its living descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        todo += children.get(current, [])
    return total


def run(database: str, database_url: str, redis_url: str) -> Live:
    """Play ROOMS rooms through the receiver for SECONDS with one worker; wait until all is folded."""
    Redis.from_url(redis_url).flushdb()
    rooms = [services.make_room(database_url, f"live-{n}", f"live-metered-{n}") for n in range(ROOMS)]
    with tempfile.TemporaryDirectory(prefix="rollcall-live-") as folder:
        log_path = Path(folder, "worker.log")
        with open(log_path, "wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "workers"],
                cwd=services.PROJECT,
                env=services.service_env(database_url, redis_url),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            with services.gunicorn("wsgi:app", services.service_env(database_url, redis_url)) as port:
                cpu_before = cpu_seconds(worker.pid)
                statuses = post(port, rooms, SECONDS)
            posted = sum(count for status, count in statuses.items() if status in (200, 202))
            drain._watch(database_url, _stored(database_url), lambda: worker.poll() is not None, since=0)
            cpu = cpu_seconds(worker.pid) - cpu_before
            jobs = _jobs_run(redis_url)
        finally:
            worker.terminate()
            worker.wait()
        worker_log = log_path.read_text()
    relayed = sum(int(n) for n in re.findall(r"relay: signalled (\d+) room", worker_log))
    folds = len(re.findall(r"room \d+: folded", worker_log))
    return Live(database, posted, statuses, SECONDS, _latencies(database_url), cpu, jobs, folds, relayed)


def _stored(database_url: str) -> int:
    return drain._count(database_url, None)


def _jobs_run(redis_url: str) -> int:
    workers = Worker.all(connection=Redis.from_url(redis_url))
    return sum(worker.successful_job_count + worker.failed_job_count for worker in workers)


def _latencies(database_url: str) -> list[float]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(Delivery.received_at, Delivery.processed_at)).all()
    engine.dispose()
    return sorted((processed - received).total_seconds() for received, processed in rows if processed)


def report(result: Live) -> None:
    """Print one database's figures, with the goals beside them."""
    latencies, rows = result.latencies, len(result.latencies)
    per_thousand = result.cpu_seconds / max(rows, 1) * 1000
    p50, p99 = load.percentile(latencies, 0.5), load.percentile(latencies, 0.99)
    worst = latencies[-1] if latencies else float("nan")
    print(
        f"  {result.database:10} {result.posted / result.seconds:6.0f} deliveries/s posted "
        f"({result.posted:,} answered 200/202, {rows:,} stored; statuses {result.statuses})\n"
        f"  {'':10} fold latency p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s "
        f"[goal: max <= {LATENCY_GOAL_SECONDS:.0f} s {_verdict(worst <= LATENCY_GOAL_SECONDS)}]\n"
        f"  {'':10} worker {result.cpu_seconds:.1f} CPU-s = {per_thousand:.2f} CPU-s per 1,000 deliveries "
        f"[goal: <= {CPU_GOAL:.0f} {_verdict(per_thousand <= CPU_GOAL)}]; "
        f"{result.jobs:,} jobs run ({result.jobs / result.seconds * 60:,.0f}/min); "
        f"{result.folds:,} folds ({rows / max(result.folds, 1):.1f} deliveries each); "
        f"relay signalled {result.relayed} room(s)"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


DATABASES = (("PostgreSQL", services.postgres_database), ("SQLite", services.sqlite_database))


def main() -> None:
    """Run the live benchmark on PostgreSQL (when reachable), then SQLite."""
    print(
        f"\nLive traffic: {ROOMS} rooms of rolling {PEOPLE[0]}-{PEOPLE[1]}-person meetings through the "
        f"receiver for {SECONDS:.0f} s, {PROCESSES}x{THREADS} keep-alive connections, one worker:"
    )
    with services.redis_server() as redis_url:
        for database, fresh in DATABASES:
            with fresh() as url:
                if url is not None:
                    report(run(database, url, redis_url))
    print(f"  (load average {', '.join(f'{n:.2f}' for n in os.getloadavg())})")


if __name__ == "__main__":
    main()
