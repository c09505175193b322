"""Benchmark: one 2,000-person meeting (~10,000 deliveries, duplicates and disorder included) through the
real receiver with one worker running: how long after its last delivery is the meeting current?

"Current" means every delivery folded and the session showing all 2,000 people, ended. The baseline,
measured in the same run, is how long the deliveries took to post: the lag is reported against it.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bench import drain, services
from workers.models import Delivery, DeliveryStatus, MeetingSession
from workers.runtime.connections import make_engine
from workers.timefmt import iso_ms

PEOPLE = 2_000
CONNECTIONS = 16
MEETING = "bench-2000"
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


def deliveries(shuffle: random.Random) -> list[tuple[str, bytes]]:
    """Return (event, body) pairs: each person joins, some reconnect, 25 % of facts arrive twice."""
    facts: list[tuple[str, dict[str, object]]] = [("meeting-started", {"startTime": iso_ms(T0)})]
    for person in range(PEOPLE):
        who = {"externalUserId": f"user-{person}", "name": f"Person {person}"}
        joined = T0 + timedelta(seconds=person % 900)
        for stay in range(2):  # a drop and a rejoin for everyone: ~4,000 participant sessions
            psid = f"{person}-{stay}"
            left = joined + timedelta(minutes=20 + person % 30)
            facts.append(
                ("participant-joined", {**who, "participantSessionId": psid, "joinTime": iso_ms(joined)})
            )
            facts.append(
                ("participant-left", {**who, "participantSessionId": psid, "leftTime": iso_ms(left)})
            )
            joined = left + timedelta(seconds=10 + person % 40)
    facts += shuffle.sample(facts[1:], len(facts) // 4)  # duplicates
    shuffle.shuffle(facts)  # out of order
    facts.append(("meeting-ended", {"endTime": iso_ms(T0 + timedelta(hours=2))}))
    return [(event, json.dumps({"meetingSessionId": MEETING, **body}).encode()) for event, body in facts]


def post_all(port: int, token: str, items: list[tuple[str, bytes]]) -> float:
    """Post every delivery from CONNECTIONS threads (the end webhook last); return the seconds it took."""
    pending = list(reversed(items[:-1]))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                event, body = pending.pop()
            _post(port, token, event, body)

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _post(port, token, *items[-1])
    return time.perf_counter() - started


def _post(port: int, token: str, event: str, body: bytes) -> None:
    head = (
        f"POST /hooks/metered/{token}/{event} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(head + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    if answer[9:12] not in (b"200", b"202"):
        raise RuntimeError(f"the receiver answered {answer[:200]!r}")


def is_current(database_url: str) -> bool:
    """Say whether every delivery is folded and the session shows everyone, ended."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        unfolded = connection.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status != DeliveryStatus.PROCESSED)
        )
        meeting = connection.execute(
            select(MeetingSession.status, MeetingSession.participant_count).where(
                MeetingSession.meeting_session_id == MEETING
            )
        ).first()
    engine.dispose()
    return unfolded == 0 and meeting is not None and tuple(meeting) == ("ended", PEOPLE)


def run(database_url: str, redis_url: str) -> tuple[int, float, float]:
    """Play the meeting; return (deliveries, seconds posting, seconds from the last delivery to current)."""
    _, token = services.make_room(database_url, "meeting-room", "meeting-metered-id")
    items = deliveries(random.Random(2000))
    worker = drain._worker(database_url, redis_url)
    try:
        with services.gunicorn("wsgi:app", services.service_env(database_url, redis_url)) as port:
            posting = post_all(port, token, items)
            last = time.perf_counter()
            while not is_current(database_url):
                if time.perf_counter() - last > 120:
                    raise RuntimeError("the meeting was not current 120 s after its last delivery")
                time.sleep(0.05)
            return len(items), posting, time.perf_counter() - last
    finally:
        worker.terminate()
        worker.wait()


def main() -> None:
    """Run the meeting benchmark on SQLite and (when reachable) PostgreSQL."""
    print(f"\nOne {PEOPLE:,}-person meeting through the receiver, one worker running:")
    with services.redis_server() as redis_url:
        for name, database in (
            ("SQLite", services.sqlite_database),
            ("PostgreSQL", services.postgres_database),
        ):
            with database() as url:
                if url is None:
                    continue
                count, posting, lag = run(url, redis_url)
                print(
                    f"  {name:10s} {count:,} deliveries posted in {posting:.1f} s (baseline); current "
                    f"{lag:.1f} s after the last one = {lag / posting:.2f}x the posting time  [goal: <= 10 s]"
                )


if __name__ == "__main__":
    main()
