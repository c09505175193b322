"""A small, bounded HTTP load generator: connections posting ~600-byte JSON webhooks for a while.

wrk drives the load when it is installed (`apt install wrk`): keep-alive connections (16, 64) from 2 threads,
each request's body made by a Lua script (a distinct participant session each), at a fraction of the CPU
a Python client needs on the shared machine. Without wrk, a Python generator stands in: two processes of
eight threads, so its own GIL does not cap the figures, each request on a fresh connection it asks the
server to close (`Connection: close`), read with a minimal parser. Figures from the two are not
comparable with each other, only with a baseline measured the same way in the same run.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROCESSES = 2
THREADS_PER_PROCESS = 8


@dataclass(frozen=True)
class Target:
    """Where to post: port, path (with the room token) and room name for the body."""

    port: int
    path: str
    room_name: str
    room_id: str


@dataclass(frozen=True)
class Stats:
    """What one run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def percentile(latencies_ms: list[float], fraction: float) -> float:
    """Return the `fraction` percentile of `latencies_ms` (nan when empty)."""
    ordered = sorted(latencies_ms)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def body(room_name: str, room_id: str, session: str) -> bytes:
    """Return a ~600-byte join webhook for one participant session."""
    return json.dumps(
        {
            "participantSessionId": session,
            "meetingSessionId": "bench-meeting-1",
            "roomName": room_name,
            "roomId": room_id,
            "externalUserId": f"user-{session}",
            "name": f"Bench Participant {session}",
            "email": f"participant-{session}@example.com",
            "isAdmin": False,
            "joinTime": "2026-05-04T15:00:00.000Z",
            "meta": {"client": "bench", "browser": "Firefox 140.0 on Linux x86_64", "notes": "x" * 190},
        }
    ).encode()


def request(target: Target, session: str) -> bytes:
    payload = body(target.room_name, target.room_id, session)
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\nUser-Agent: rollcall-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def _post(target: Target, data: bytes) -> int:
    with socket.create_connection(("127.0.0.1", target.port)) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):  # closed by the server, as asked
            answer += chunk
    return int(answer[9:12])


def _thread(
    target: Target, prefix: str, until: float, warm_until: float, out: list[tuple[float, int]]
) -> None:
    count = 0
    while (now := time.perf_counter()) < until:
        count += 1
        status = _post(target, request(target, f"{prefix}-{count}"))
        if now >= warm_until:
            out.append(((time.perf_counter() - now) * 1000, status))


def _process(args: tuple[Target, str, float, float]) -> list[tuple[float, int]]:
    target, prefix, seconds, warmup = args
    start = time.perf_counter()
    results: list[list[tuple[float, int]]] = [[] for _ in range(THREADS_PER_PROCESS)]
    threads = [
        threading.Thread(
            target=_thread,
            args=(target, f"{prefix}-{n}", start + warmup + seconds, start + warmup, results[n]),
        )
        for n in range(THREADS_PER_PROCESS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [item for result in results for item in result]


def run(
    target: Target, seconds: float, warmup: float = 1.0, label: str = "run", connections: int = 16
) -> Stats:
    """Post from `connections` for `seconds` after a warm-up; every participant session id is distinct.

    The Python generator always uses its 16 threads: `connections` is wrk's.
    """
    if WRK is not None:
        return run_wrk(target, seconds, warmup, label, connections)
    return run_python(target, seconds, warmup, label)


def run_python(target: Target, seconds: float, warmup: float = 1.0, label: str = "run") -> Stats:
    """Post from the Python generator: a fresh connection per request (see the module's docstring)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        parts = pool.map(
            _process, [(target, f"{label}-{p}-{time.time_ns()}", seconds, warmup) for p in range(PROCESSES)]
        )
    samples = [item for part in parts for item in part]
    statuses: dict[int, int] = {}
    for _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [latency for latency, _ in samples]
    return Stats(len(samples), seconds, percentile(latencies, 0.5), percentile(latencies, 0.99), statuses)


WRK = shutil.which("wrk")
_WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
_SESSION = "@@session@@"  # where the script puts each request's participant session id


def run_wrk(
    target: Target, seconds: float, warmup: float = 1.0, label: str = "run", connections: int = 16
) -> Stats:
    """Post with wrk: `connections` keep-alive connections, a warm-up run first, then the measured one."""
    with tempfile.TemporaryDirectory(prefix="rollcall-wrk-") as folder:
        template = Path(folder, "body.json")
        template.write_bytes(body(target.room_name, target.room_id, _SESSION))
        if warmup > 0:
            _wrk(target, warmup, f"{label}-warm-{time.time_ns()}", template, connections)
        return _wrk(target, seconds, f"{label}-{time.time_ns()}", template, connections)


def _wrk(target: Target, seconds: float, prefix: str, template: Path, connections: int) -> Stats:
    url = f"http://127.0.0.1:{target.port}{target.path}"
    command = [WRK or "wrk", f"-t{PROCESSES}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    command += ["-s", str(_WRK_SCRIPT), url, "--", str(template), _SESSION, prefix]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30)  # noqa: S603
    return _parse_wrk(done.stdout, seconds)


def _parse_wrk(output: str, seconds: float) -> Stats:
    # The script's done() prints one line: "rollcall-bench <requests> <p50 us> <p99 us> <status>:<count>..."
    line = next(line for line in output.splitlines() if line.startswith("rollcall-bench "))
    _, requests, p50, p99, *counts = line.split()
    statuses = {int(status): int(count) for status, count in (item.split(":") for item in counts)}
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        statuses[0] = sum(int(n) for n in re.findall(r"\d+", errors.group(1)))  # 0: no answer at all
    return Stats(int(requests), seconds, float(p50) / 1000, float(p99) / 1000, statuses)
