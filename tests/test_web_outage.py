"""The web process while PostgreSQL is away for real: 503 problem+json everywhere, and back by itself."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import Engine, func, make_url, select, text

from tests.conftest import API_TOKEN, postgres_database
from tests.servers import serving
from webhooks import create_app, runtime_of
from workers.models import Delivery, Room
from workers.rooms import new_token, token_hash
from workers.runtime.connections import make_engine, make_sessionmaker
from workers.runtime.settings import Settings

SERVER_URL = os.environ.get("TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not SERVER_URL, reason="needs TEST_DATABASE_URL (a PostgreSQL server)")
BACK_WITHIN_SECONDS = 30


class Outage:
    """A database of the test's own on the test server, which it can close to every connection and reopen."""

    def __init__(self, admin: Engine, name: str) -> None:
        self.admin, self.name = admin, name

    def begin(self) -> None:
        """Refuse new connections to the database and end every open one."""
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": self.name},
            )

    def end(self) -> None:
        """Accept connections again."""
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


@pytest.fixture
def outage_database() -> Iterator[tuple[str, Outage]]:
    """Create a database with the schema; yield its URL and its Outage; drop it after."""
    assert SERVER_URL
    with postgres_database(SERVER_URL, "rollcall_outage") as (url, admin):
        outage = Outage(admin, make_url(url).database or "")
        try:
            yield url, outage
        finally:
            outage.end()


def add_room(database_url: str, name: str) -> str:
    token = new_token()
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as db:
        db.add(Room(room_name=name, webhook_token_hash=token_hash(token)))
    engine.dispose()
    return token


def settings_for(database_url: str, redis_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url, redis_url=redis_url, api_token=(API_TOKEN,))


def join(number: int) -> dict[str, Any]:
    return {"participantSessionId": f"ps-{number}", "meetingSessionId": "ms-1", "name": f"P{number}"}


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == 503


def test_requests_answer_503_problems_while_the_database_is_away_and_succeed_once_it_is_back(
    outage_database: tuple[str, Outage], redis_url: str, redis_client: Redis
) -> None:
    database_url, outage = outage_database
    cached, fresh = add_room(database_url, "cached"), add_room(database_url, "fresh")
    app = create_app(settings_for(database_url, redis_url))
    accepted = []
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        bearer = {"Authorization": f"Bearer {API_TOKEN}"}
        first = client.post(f"/hooks/metered/{cached}/participant-joined", json=join(1))
        assert first.status_code == 202  # the pool and the token cache are warm
        accepted.append(first.json()["id"])

        outage.begin()
        for answer in (
            client.get("/api/events", headers=bearer),
            client.get("/api/sessions/ms-1", headers=bearer),
            client.get("/sessions/ms-1", auth=("anyone", API_TOKEN)),
            client.post(f"/hooks/metered/{cached}/participant-joined", json=join(2)),
            client.post(f"/hooks/metered/{fresh}/participant-joined", json=join(3)),
            client.get("/readyz"),
        ):
            assert_unavailable(answer)
        assert client.get("/readyz").json()["checks"] == {"database": "unreachable", "redis": "ok"}

        outage.end()
        deadline = time.monotonic() + BACK_WITHIN_SECONDS
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "still not ready"
            time.sleep(0.2)
        for number, token in ((4, cached), (5, fresh)):
            answer = client.post(f"/hooks/metered/{token}/participant-joined", json=join(number))
            assert answer.status_code == 202, answer.text
            accepted.append(answer.json()["id"])
        assert client.get("/api/events", headers=bearer).status_code == 200
        assert client.get("/sessions/ms-1", auth=("anyone", API_TOKEN)).status_code in (200, 404)
    with runtime_of(app).Db() as db:
        stored = db.scalars(select(Delivery.id)).all()
        assert sorted(stored) == sorted(accepted)  # every 2xx kept; every 503 left nothing behind
        assert db.scalar(select(func.count()).select_from(Delivery)) == 3
    runtime_of(app).engine.dispose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Listen on a loopback port, take every connection and never answer (a hung database); yield the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=take, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_a_database_that_never_answers_is_a_503_in_seconds_not_a_hung_request(
    silent_server: int, redis_url: str, redis_client: Redis
) -> None:
    database_url = f"postgresql+psycopg://rollcall@127.0.0.1:{silent_server}/rollcall"
    app = create_app(settings_for(database_url, redis_url))
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        assert_unavailable(client.get("/api/events", headers={"Authorization": f"Bearer {API_TOKEN}"}))
        assert_unavailable(client.post(f"/hooks/metered/{new_token()}/participant-joined", json=join(1)))
        assert_unavailable(client.get("/readyz"))
    runtime_of(app).engine.dispose()
