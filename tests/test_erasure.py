"""Erasure: a person's name, email and id leave every table and raw body; their figures stay, and a rebuild
from the rewritten raw bodies gives them again under the pseudonym. On SQLite and PostgreSQL, over real HTTP,
with a real RQ worker; the database is scanned through a full dump (pg_dump, or SQLite's iterdump).
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from flask import Flask
from sqlalchemy import make_url, select, update

from tests.conftest import API_TOKEN, run_worker
from tests.test_inbox import make_room
from webhooks import cli as commands
from webhooks import runtime_of
from workers import alerts, inbox, jobs
from workers.models import AuditRecord, Delivery, Notification, Room, SealedRecord
from workers.models.base import utcnow
from workers.runtime import process
from workers.runtime.process import Runtime
from workers.sealing import IDENTITY, Kind, content_hash, keyed_hash

ADA = {"externalUserId": "u-ada-7731", "email": "Ada.Lovelace@example.org", "name": "Ada Lovelace"}
ADA_KEY = "ext:u-ada-7731"
TRACES = ("u-ada-7731", "ada.lovelace@example.org", "Ada Lovelace", "Lovelace")
DATE = "2026-11-02"
BOB = "bob@example.org"
FIGURES = ("attendedSeconds", "attendancePercent", "joinCount", "firstJoinAt", "lastLeftAt", "segments")


def hook(api: httpx.Client, token: str, event: str, **body: Any) -> None:
    response = api.post(f"/hooks/metered/{token}/{event}", json={"meetingSessionId": "ms-1", **body})
    assert response.status_code == 202, response.text


def play_meeting(api: httpx.Client, token: str) -> None:
    """Ada joins twice (a reconnect and a second device), Bob once by form data; the meeting ends."""
    hook(api, token, "meeting-started", startTime="2026-11-02T09:00:00Z")
    hook(
        api, token, "participant-joined", participantSessionId="ps-1", joinTime="2026-11-02T09:00:00Z", **ADA
    )
    hook(api, token, "participant-left", participantSessionId="ps-1", leftTime="2026-11-02T09:20:00Z")
    hook(
        api, token, "participant-joined", participantSessionId="ps-2", joinTime="2026-11-02T09:25:00Z", **ADA
    )
    hook(api, token, "participant-left", participantSessionId="ps-2", leftTime="2026-11-02T09:50:00Z", **ADA)
    form = {
        "meetingSessionId": "ms-1",
        "participantSessionId": "ps-3",
        "name": "Bob",
        "email": "bob@example.org",
    }
    assert api.post(f"/hooks/metered/{token}/participant-joined", data=form).status_code == 202
    hook(api, token, "meeting-ended", endTime="2026-11-02T10:00:00Z")


def attendance(api: httpx.Client, key: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/people/{quote(key, safe='')}/attendance")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def figures(entry: dict[str, Any]) -> dict[str, Any]:
    return {name: entry[name] for name in FIGURES}


def dump(database_url: str) -> str:
    """Return the whole database as SQL text: pg_dump's, or SQLite's iterdump."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as connection:
            return "\n".join(connection.iterdump())
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", libpq_url], check=True, capture_output=True, text=True).stdout


def traces_in(text: str) -> list[str]:
    return [trace for trace in TRACES if trace.lower() in text.lower()]


def arrange(api: httpx.Client) -> Runtime:
    """Play the meeting, put Ada on the roster and override her status with a reason that names her."""
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    _, token = make_room(runtime)
    play_meeting(api, token)
    run_worker(runtime)
    roster = api.post("/api/rooms/standup/roster", json={**ADA, "effectiveFrom": "2026-11-01T00:00:00Z"})
    assert roster.status_code == 201, roster.text
    override = api.put(
        f"/api/sessions/ms-1/people/{quote(ADA_KEY, safe='')}/status",
        json={"status": "excused", "reason": "Ada Lovelace wrote from ada.lovelace@example.org"},
    )
    assert override.status_code == 200, override.text
    run_worker(runtime)
    return runtime


def seal_three_days_back(runtime: Runtime) -> None:
    """Move every delivery and audit record three days back and seal those days, as the hourly job does."""
    with runtime.Db.begin() as db:
        db.execute(update(Delivery).values(received_at=utcnow() - timedelta(days=3)))
        db.execute(update(AuditRecord).values(at=utcnow() - timedelta(days=3)))
    runtime.queue().enqueue(jobs.seal_closed_days)
    run_worker(runtime)


def her_identities(runtime: Runtime) -> list[tuple[Kind, Delivery | AuditRecord]]:
    """Return what anyone who knows Ada's id, email and name would guess her sealed records' identity was."""
    with runtime.Db() as db:
        known = db.execute(
            select(Delivery.external_user_id, Delivery.email, Delivery.name).where(
                Delivery.external_user_id == ADA["externalUserId"]
            )
        ).all()
    deliveries: list[tuple[Kind, Delivery | AuditRecord]] = [
        ("delivery", Delivery(external_user_id=ext, email=email, name=name))
        for ext, email, name in set(known)
    ]
    return [*deliveries, ("audit", AuditRecord(subject=ADA_KEY))]


def confirmable(runtime: Runtime, guesses: list[tuple[Kind, Delivery | AuditRecord]]) -> set[str]:
    """Return every identity hash one could compute from `guesses`: plain, and keyed by each salt stored."""
    with runtime.Db() as db:
        salts = set(db.scalars(select(SealedRecord.salt).where(SealedRecord.salt.is_not(None))))
    plain = {content_hash(guess, IDENTITY[kind]) for kind, guess in guesses}
    return plain | {
        keyed_hash(guess, IDENTITY[kind], salt) for kind, guess in guesses for salt in salts if salt
    }


def test_an_erased_person_leaves_no_trace_and_keeps_every_figure(
    api: httpx.Client, database_url: str
) -> None:
    runtime = arrange(api)
    seal_three_days_back(runtime)
    (before,) = attendance(api, ADA_KEY)
    assert before["name"] == "Ada Lovelace" and before["joinCount"] == 2
    sealed = dump(database_url)
    assert traces_in(sealed) == list(TRACES)  # the scan can find them
    guesses = her_identities(runtime)
    # Her sealed records' identity hashes (3 deliveries, 2 audit subjects): each can be recomputed from
    # what is known of her, with its salt.
    assert len([digest for digest in confirmable(runtime, guesses) if digest in sealed]) == 5
    bob = attendance(api, "email:bob@example.org")

    response = api.post(f"/api/people/{quote(ADA_KEY, safe='')}/erase")

    assert response.status_code == 200, response.text
    erased = response.json()
    pseudonym, new_key = erased["pseudonym"], erased["participantKey"]
    assert pseudonym.startswith("erased:") and new_key == f"ext:{pseudonym}"
    assert erased["rows"]["deliveries"] == 4 and erased["rows"]["attendance"] == 1
    erased_dump = dump(database_url)
    assert traces_in(erased_dump) == []
    # Their salts are gone: no hash in the database can confirm her id, email or name any more.
    assert [digest for digest in confirmable(runtime, guesses) if digest in erased_dump] == []
    assert attendance(api, ADA_KEY) == []
    (after,) = attendance(api, new_key)
    assert figures(after) == figures(before)
    assert (after["name"], after["email"], after["externalUserId"]) == (pseudonym, None, pseudonym)
    assert attendance(api, "email:bob@example.org") == bob  # nobody else is touched
    with runtime.Db() as db:
        record = db.scalars(select(AuditRecord).where(AuditRecord.action == "person.erased")).one()
    assert (record.actor, record.subject, record.before) == ("api", new_key, None)
    events = api.get("/api/events").json()["items"]
    hers = [event for event in events if event["redaction"] == "erasure"]
    assert len(hers) == 4 and all(event["redactedAt"] for event in hers)
    assert {event["rawBody"].get("externalUserId") for event in hers} == {pseudonym}
    entries = api.get("/api/audit").json()["items"]
    rewritten = {
        entry["action"] for entry in entries if entry["redaction"] == "erasure" and entry["redactedAt"]
    }
    assert rewritten == {"roster.added", "status.overridden"}

    # A rebuild that reads every raw body again (as after a parser change) finds the same figures.
    with runtime.Db.begin() as db:
        db.execute(update(Delivery).values(facts_version=0))
    assert api.post("/api/sessions/ms-1/rebuild").status_code == 202
    run_worker(runtime)
    (rebuilt,) = attendance(api, new_key)
    assert figures(rebuilt) == figures(before)
    assert rebuilt["name"] == pseudonym
    assert attendance(api, "email:bob@example.org") == bob
    assert traces_in(dump(database_url)) == []


def test_erasing_an_unknown_person_is_a_404(api: httpx.Client) -> None:
    response = api.post("/api/people/ext:nobody/erase")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_the_cli_erases_and_records_the_os_user(app: Flask, runtime: Runtime, api: httpx.Client) -> None:
    arranged = arrange(api)
    commands.register(app)
    result = app.test_cli_runner().invoke(args=["people", "erase", ADA_KEY])
    assert result.exit_code == 0, result.output
    assert "erased:" in result.output and "Lovelace" not in result.output
    with arranged.Db() as db:
        record = db.scalars(select(AuditRecord).where(AuditRecord.action == "person.erased")).one()
    assert record.actor.startswith("cli:")
    again = app.test_cli_runner().invoke(args=["people", "erase", ADA_KEY])
    assert again.exit_code != 0 and "no attendance" in again.output


def test_an_erasure_reaches_the_notifications(live_app: Callable[..., Any], database_url: str) -> None:
    secret = "whsec_" + base64.b64encode(b"the outbound webhook secret key!").decode()
    settings = {"finalize_after_seconds": 0, "notify_webhook_url": "http://127.0.0.1:9/events"}
    with (
        live_app(**settings, notify_webhook_secret=secret) as (app, base_url),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api,
    ):
        runtime = runtime_of(app)
        process.install(runtime)
        room_id, token = make_room(runtime)
        with runtime.Db.begin() as db:
            db.execute(update(Room).where(Room.id == room_id).values(notify_participants=True))
        play_meeting(api, token)
        # She joins by email alone; the fold fails for good with an error quoting her, and an alert says so.
        late = {"email": ADA["email"], "name": ADA["name"], "joinTime": "2026-11-02T09:55:00Z"}
        hook(api, token, "participant-joined", participantSessionId="ps-4", **late)
        with runtime.Db.begin() as db:
            failed = db.scalars(select(Delivery.id).where(Delivery.participant_session_id == "ps-4")).one()
            assert inbox.mark_failed(db, failed, f"no such participant: {ADA['email']}") is not None
            alerts.delivery_failed(db, runtime.settings, failed, utcnow())
        run_worker(runtime)
        runtime.queue().enqueue(jobs.finalize_overdue)  # as the worker's cron does: final, then notified
        run_worker(runtime)
        with runtime.Db() as db:
            recipients = set(db.scalars(select(Notification.recipient)))
            payloads = " ".join(filter(None, db.scalars(select(Notification.payload))))
        assert ADA["email"].lower() in recipients and "Ada Lovelace" in payloads  # a thank-you, and the event
        with runtime.Db() as db:
            alert = db.scalars(select(Notification.payload).where(Notification.delivery_id == failed)).one()
        assert alert is not None and ADA["email"] in alert

        assert api.post(f"/api/people/{quote(ADA_KEY, safe='')}/erase").status_code == 200

        assert traces_in(dump(database_url)) == []
        with runtime.Db() as db:
            assert BOB in set(db.scalars(select(Notification.recipient)))
