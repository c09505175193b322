"""Archived rooms over real HTTP: new meetings within ARCHIVE_GRACE_SECONDS, only their own ones after."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select

from tests.conftest import run_worker
from tests.test_room_tokens import Serve, create_room, serve_fixture  # noqa: F401 - a fixture
from webhooks import runtime_of
from workers.deliveries.parsing import END, JOIN, LEAVE, START
from workers.models import Delivery, MeetingSession
from workers.runtime import metrics


def deliver(api: httpx.Client, token: str, event: str, **body: Any) -> httpx.Response:
    return api.post(f"/hooks/metered/{token}/{event}", json=body)


def test_within_the_grace_an_archived_room_takes_a_new_meeting(serve: Serve) -> None:
    with serve() as api:
        token = create_room(api, "closing")
        assert api.delete("/api/rooms/closing").status_code == 200
        answer = deliver(api, token, JOIN, meetingSessionId="ms-new", participantSessionId="ps-1")
        assert answer.status_code == 202


def test_after_the_grace_an_archived_room_takes_only_the_meetings_it_has(
    serve: Serve, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with serve() as api:
        token = create_room(api, "closing")
        joined = deliver(api, token, JOIN, meetingSessionId="ms-folded", participantSessionId="ps-1")
        assert joined.status_code == 202
        run_worker(runtime_of(api.app))  # type: ignore[attr-defined]
        # Stored but not folded yet, as when the workers are behind.
        assert deliver(api, token, START, meetingSessionId="ms-stored").status_code == 202
        assert api.delete("/api/rooms/closing").status_code == 200
    caplog.set_level(logging.INFO)
    with serve(archive_grace_seconds=0) as api:
        rejected = metrics.WEB.get_sample_value("rollcall_webhook_rejected_total", {"status": "410"}) or 0
        refused = deliver(api, token, JOIN, meetingSessionId="ms-new", participantSessionId="ps-2")
        assert refused.status_code == 410
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert "archived" in refused.json()["detail"]
        assert deliver(api, token, START, meetingSessionId="ms-new").status_code == 410
        assert (
            metrics.WEB.get_sample_value("rollcall_webhook_rejected_total", {"status": "410"}) == rejected + 2
        )
        assert token not in caplog.text
        late = [
            deliver(api, token, LEAVE, meetingSessionId="ms-folded", participantSessionId="ps-1"),
            deliver(api, token, END, meetingSessionId="ms-folded"),
            deliver(api, token, JOIN, meetingSessionId="ms-stored", participantSessionId="ps-3"),
            deliver(api, token, END, meetingSessionId="ms-stored"),
        ]
        assert [answer.status_code for answer in late] == [202] * 4
        runtime = runtime_of(api.app)  # type: ignore[attr-defined]
        run_worker(runtime)
        with runtime.Db() as db:
            named = select(func.count()).where(Delivery.meeting_session_ref == "ms-new")
            assert db.scalar(named) == 0
            ended = select(MeetingSession.meeting_session_id).where(MeetingSession.status == "ended")
            assert sorted(db.scalars(ended)) == ["ms-folded", "ms-stored"]


def test_after_the_grace_unnamed_deliveries_may_close_but_not_open(serve: Serve) -> None:
    with serve(archive_grace_seconds=0) as api:
        token = create_room(api, "unnamed")
        assert api.delete("/api/rooms/unnamed").status_code == 200
        # With no meeting session named, only the time tells: now is after the cut-off.
        assert deliver(api, token, JOIN, participantSessionId="ps-1").status_code == 410
        assert deliver(api, token, START).status_code == 410
        before = deliver(api, token, JOIN, participantSessionId="ps-2", joinTime="2020-01-01T10:00:00Z")
        assert before.status_code == 202
        assert deliver(api, token, LEAVE, participantSessionId="ps-2").status_code == 202
        assert deliver(api, token, END).status_code == 202


def test_a_room_not_archived_takes_everything_with_no_grace(serve: Serve) -> None:
    with serve(archive_grace_seconds=0) as api:
        token = create_room(api, "open")
        answer = deliver(api, token, JOIN, meetingSessionId="ms-1", participantSessionId="ps-1")
        assert answer.status_code == 202
