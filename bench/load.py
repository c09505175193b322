"""A small, bounded HTTP load generator: N connections posting ~600-byte JSON webhooks for a while.

Gunicorn's sync workers close the connection after each answer, so every request opens a fresh TCP
connection, for the baseline and for Rollcall alike. The generator runs in two processes of eight threads
(16 connections) so its own GIL does not cap the figures; requests are prebuilt bytes and answers are read
with a minimal parser, so the generator costs as little CPU as it can on the shared machine.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import threading
import time
from dataclasses import dataclass

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
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
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
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _post(target: Target, data: bytes) -> int:
    with socket.create_connection(("127.0.0.1", target.port)) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):  # the sync worker closes the connection when done
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


def run(target: Target, seconds: float, warmup: float = 1.0, label: str = "run") -> Stats:
    """Post from 16 connections for `seconds` after a warm-up; every participant session id is distinct."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        parts = pool.map(
            _process, [(target, f"{label}-{p}-{time.time_ns()}", seconds, warmup) for p in range(PROCESSES)]
        )
    samples = [item for part in parts for item in part]
    statuses: dict[int, int] = {}
    for _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    return Stats(len(samples), seconds, [latency for latency, _ in samples], statuses)
