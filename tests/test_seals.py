"""Daily seals and verify: rows changed, added or removed in the database after sealing are named; retention
and erasure show as redacted, not as tampering. On SQLite and PostgreSQL; the jobs run in a real RQ worker,
the API over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from flask import Flask
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tests.conftest import run_worker
from tests.test_erasure import ADA_KEY, play_meeting
from tests.test_inbox import arrival, make_room
from webhooks import cli as commands
from webhooks import runtime_of
from workers import audit, inbox, jobs
from workers.models import AuditRecord, Delivery, Seal, SealedRecord
from workers.models.base import utcnow
from workers.runtime import process
from workers.runtime.process import Runtime

DAY = 86400
JOIN = '{"participantSessionId": "ps-%d", "meetingSessionId": "ms-1", "name": "Person %d"}'


def store_old(runtime: Runtime, room_id: int, index: int, days_ago: float) -> int:
    """Store one join received `days_ago` days ago; return its id."""
    return inbox.store(runtime.engine, arrival(room_id, JOIN % (index, index), age_seconds=days_ago * DAY)).id


def audit_old(runtime: Runtime, room_id: int, days_ago: float) -> int:
    """Record one management action made `days_ago` days ago; return its id."""
    with runtime.Db.begin() as db:
        record = audit.record(db, "api", "room.updated", room_id=room_id, after={"maxParticipants": 5})
        record.at = utcnow() - timedelta(days=days_ago)
        db.flush()
        return record.id


def seal(runtime: Runtime) -> None:
    """Seal every closed day, as the worker's hourly job does."""
    runtime.queue().enqueue(jobs.seal_closed_days)
    run_worker(runtime)


def verified(api: httpx.Client, copy: str = "") -> dict[str, Any]:
    """Start a verify (held to `copy`, if given), let a real worker run it, and return what it found."""
    started = api.post("/api/audit/verify", content=copy, headers={"Content-Type": "application/x-ndjson"})
    assert started.status_code == 202, started.text
    assert started.headers["Location"] == f"/api/audit/verify/{started.json()['jobId']}"
    run_worker(runtime_of(api.app))  # type: ignore[attr-defined]
    shown = api.get(started.headers["Location"])
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "finished"
    result: dict[str, Any] = shown.json()["result"]
    return result


def findings(api: httpx.Client) -> tuple[bool, set[tuple[str, str | None, int | None, str | None]]]:
    body = verified(api)
    found = {(item["problem"], item["kind"], item["id"], item["redaction"]) for item in body["findings"]}
    return body["intact"], found


def arranged(api: httpx.Client) -> tuple[Runtime, int, list[int], int]:
    """Three deliveries and an audit record three days ago, one delivery two days ago; all sealed.

    Not yesterday: a day is sealed a few minutes after it ends, and the tests may run just after midnight.
    """
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    room_id, _ = make_room(runtime)
    deliveries = [store_old(runtime, room_id, index, 3) for index in range(3)]
    deliveries.append(store_old(runtime, room_id, 3, 2))
    record_id = audit_old(runtime, room_id, 3)
    seal(runtime)
    return runtime, room_id, deliveries, record_id


def test_each_closed_day_is_sealed_once_and_chained(api: httpx.Client) -> None:
    runtime, _, _, _ = arranged(api)
    seal(runtime)  # again: nothing new to seal
    seals = api.get("/api/audit/seals").json()["items"][:2]  # then yesterday's (empty), unless at midnight
    assert [item["recordCount"] for item in seals] == [4, 1]
    assert seals[0]["previousHash"] is None and seals[1]["previousHash"] == seals[0]["sealHash"]
    assert seals[1]["day"] == (utcnow() - timedelta(days=2)).date().isoformat()
    assert findings(api) == (True, set())


def test_verify_is_a_job_whose_progress_and_findings_the_api_shows(api: httpx.Client) -> None:
    runtime, _, deliveries, _ = arranged(api)
    started = api.post("/api/audit/verify")
    assert started.status_code == 202
    job_id = started.json()["jobId"]
    # Nothing is verified on the request path: the job waits for a worker.
    assert api.get(started.headers["Location"]).json() == {
        "id": job_id,
        "status": "queued",
        "checked": 0,
        "seals": None,
    }
    with runtime.Db.begin() as db:
        db.execute(delete(Delivery).where(Delivery.id == deliveries[0]))

    run_worker(runtime)

    shown = api.get(started.headers["Location"]).json()
    seals = len(api.get("/api/audit/seals").json()["items"])
    assert (shown["status"], shown["checked"], shown["seals"]) == ("finished", seals, seals)
    assert shown["result"]["intact"] is False and shown["result"]["sealsChecked"] == seals
    assert [(item["problem"], item["id"]) for item in shown["result"]["findings"]] == [
        ("removed", deliveries[0])
    ]
    assert api.get("/api/audit/verify").status_code == 405  # no verify inside a request any more
    replay = api.post("/api/events/replay", json={}).json()["jobId"]
    for other in ("no-such-job", replay):  # only a verify's job is shown here
        missing = api.get(f"/api/audit/verify/{other}")
        assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"


def test_a_read_only_token_may_verify_but_not_replay(live_app: Callable[..., Any]) -> None:
    with live_app(read_token=("auditor-read-token",)) as (_, base_url):
        auditor = {"Authorization": "Bearer auditor-read-token"}
        started = httpx.post(f"{base_url}/api/audit/verify", headers=auditor)
        assert started.status_code == 202, started.text
        shown = httpx.get(f"{base_url}{started.headers['Location']}", headers=auditor)
        assert shown.status_code == 200 and shown.json()["status"] == "queued"
        assert httpx.post(f"{base_url}/api/events/replay", json={}, headers=auditor).status_code == 403


def test_rows_changed_added_or_removed_after_sealing_are_named(api: httpx.Client) -> None:
    runtime, room_id, deliveries, record_id = arranged(api)
    changed, removed = deliveries[0], deliveries[1]
    with runtime.Db.begin() as db:
        db.execute(update(Delivery).where(Delivery.id == changed).values(raw_body='{"name": "Mallory"}'))
        db.execute(delete(Delivery).where(Delivery.id == removed))
        db.execute(update(AuditRecord).where(AuditRecord.id == record_id).values(actor="someone-else"))
        # A mark of another name excuses nothing.
        marked = update(Delivery).where(Delivery.id == deliveries[3])
        db.execute(marked.values(raw_body="{}", redacted_at=utcnow(), redaction="tidy-up"))
    added = store_old(runtime, room_id, 9, 3)
    # Only a processed delivery's status is sealed; this one was not processed yet, and fold counts never are.
    with runtime.Db.begin() as db:
        db.execute(update(Delivery).where(Delivery.id == deliveries[2]).values(status="failed", fold_count=3))

    intact, found = findings(api)

    assert not intact
    assert found == {
        ("changed", "delivery", changed, None),
        ("removed", "delivery", removed, None),
        ("added", "delivery", added, None),
        ("changed", "audit", record_id, None),
        ("changed", "delivery", deliveries[3], None),
    }


def test_a_redaction_mark_excuses_only_the_redaction_it_names(api: httpx.Client) -> None:
    runtime, _, deliveries, record_id = arranged(api)
    forged, renamed, unexplained, purged = deliveries
    later = utcnow()
    with runtime.Db.begin() as db:
        # Someone else's identity under an erasure mark that no erasure accounts for.
        named = update(Delivery).where(Delivery.id == forged)
        db.execute(named.values(external_user_id="u-ada-7731", redacted_at=later, redaction="erasure"))
        # A purge that also renamed who attended.
        purge: dict[str, Any] = {
            "raw_body": "",
            "headers": {},
            "source_address": None,
            "redacted_at": later,
            "redaction": "retention",
        }
        db.execute(update(Delivery).where(Delivery.id == renamed).values(name="Person 2", **purge))
        db.execute(update(Delivery).where(Delivery.id == purged).values(**purge))
        # Retention never touches the audit trail.
        audited = update(AuditRecord).where(AuditRecord.id == record_id)
        db.execute(audited.values(after={"maxParticipants": 500}, redacted_at=later, redaction="retention"))
        # An erasure record slipped into a sealed day to vouch for a rewrite.
        pseudonym = "erased:0123456789abcdef"
        erased = update(Delivery).where(Delivery.id == unexplained)
        as_erased = {"external_user_id": pseudonym, "email": None, "name": pseudonym}
        db.execute(erased.values(**as_erased, redacted_at=later, redaction="erasure"))
        listing = {"pseudonym": pseudonym, "deliveries": [unexplained], "auditRecords": []}
        vouching = audit.record(db, "api", "person.erased", subject=f"ext:{pseudonym}", after=listing)
        vouching.at = utcnow() - timedelta(days=3)
        db.flush()
        vouching_id = vouching.id
        # One made today (not sealed yet) with no pseudonym and ids of any shape: it vouches for nothing.
        garbled = {"deliveries": "all", "auditRecords": ["x", record_id]}
        audit.record(db, "api", "person.erased", subject="ext:erased:", after=garbled)

    intact, found = findings(api)

    assert not intact
    assert found == {
        ("changed", "delivery", forged, None),
        ("changed", "delivery", renamed, None),
        ("changed", "delivery", unexplained, None),
        ("changed", "audit", record_id, None),
        ("added", "audit", vouching_id, None),
        ("redacted", "delivery", purged, "retention"),
    }


def test_a_processed_delivery_failed_since_is_changed_and_a_replay_is_not(api: httpx.Client) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    _, token = make_room(runtime)
    play_meeting(api, token)
    run_worker(runtime)
    with runtime.Db.begin() as db:  # as if the meeting had been three days ago
        db.execute(update(Delivery).values(received_at=utcnow() - timedelta(days=3)))
    seal(runtime)
    with runtime.Db() as db:
        bob = db.scalars(select(Delivery.id).where(Delivery.name == "Bob")).one()
        ada = db.scalars(select(Delivery.id).where(Delivery.external_user_id == "u-ada-7731")).first()
    assert ada is not None

    assert api.post(f"/api/events/{ada}/replay").status_code == 202
    assert findings(api) == (True, set())  # waiting to be folded again
    run_worker(runtime)
    assert findings(api) == (True, set())  # folded again
    with runtime.Db.begin() as db:  # out of the figures, with a reason that looks routine
        failed = update(Delivery).where(Delivery.id == bob)
        db.execute(failed.values(status="failed", status_reason="worker crashed"))

    assert findings(api) == (False, {("changed", "delivery", bob, None)})


def test_a_salt_destroyed_with_no_erasure_to_account_for_it_is_a_change(api: httpx.Client) -> None:
    runtime, _, deliveries, record_id = arranged(api)
    with runtime.Db.begin() as db:  # the identity then cannot be checked: rewritten for all verify could tell
        shredded = update(SealedRecord).where(
            ((SealedRecord.kind == "delivery") & (SealedRecord.record_id == deliveries[0]))
            | ((SealedRecord.kind == "audit") & (SealedRecord.record_id == record_id))
        )
        db.execute(shredded.values(salt=None))
    assert findings(api) == (
        False,
        {("changed", "delivery", deliveries[0], None), ("changed", "audit", record_id, None)},
    )


def test_a_rewritten_seal_breaks_the_chain(api: httpx.Client) -> None:
    runtime, _, _, _ = arranged(api)
    with runtime.Db.begin() as db:
        first = db.scalars(select(Seal).order_by(Seal.day)).first()
        assert first is not None
        first.merkle_root = "0" * 64
    intact, found = findings(api)
    assert not intact
    assert found == {("root-mismatch", None, None, None), ("chain-broken", None, None, None)}


def test_retention_and_erasure_show_as_redacted(
    api: httpx.Client, start_runtime: Callable[..., Runtime]
) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    _, token = make_room(runtime)
    play_meeting(api, token)
    run_worker(runtime)
    with runtime.Db.begin() as db:  # as if the meeting had been three days ago
        db.execute(update(Delivery).values(received_at=utcnow() - timedelta(days=3)))
    seal(runtime)
    with runtime.Db() as db:
        ada = set(db.scalars(select(Delivery.id).where(Delivery.external_user_id == "u-ada-7731")))
        bob = db.scalars(select(Delivery.id).where(Delivery.name == "Bob")).one()
    assert len(ada) == 3  # her first leave named nobody

    assert api.post(f"/api/people/{quote(ADA_KEY, safe='')}/erase").status_code == 200
    with runtime.Db() as db:  # her records' salts are destroyed, everyone else's kept
        salts = db.execute(select(SealedRecord.kind, SealedRecord.record_id, SealedRecord.salt)).all()
        rewritten = set(db.scalars(select(Delivery.id).where(Delivery.redaction == "erasure")))
    assert ada < rewritten  # her first leave too
    assert {(kind, record_id) for kind, record_id, salt in salts if salt is None} == {
        ("delivery", record_id) for record_id in rewritten
    }
    intact, found = findings(api)
    erased = {item_id for problem, _, item_id, how in found if (problem, how) == ("redacted", "erasure")}
    assert intact and len(found) == 4 and ada < erased  # her joins and leaves, the first leave too

    purging = start_runtime(retention_days=2)
    purging.queue().enqueue(jobs.purge_expired_bodies)
    run_worker(purging)
    intact, found = findings(api)
    assert intact and ("redacted", "delivery", bob, "retention") in found
    assert not any(problem != "redacted" for problem, *_ in found)


def test_the_cli_verifies_and_exports_the_seals(app: Flask, api: httpx.Client) -> None:
    runtime, _, deliveries, _ = arranged(api)
    commands.register(app)
    cli = app.test_cli_runner()
    exported = cli.invoke(args=["audit", "seals"])
    assert exported.exit_code == 0, exported.output
    lines: list[dict[str, Any]] = [json.loads(line) for line in exported.output.splitlines()]
    assert lines == api.get("/api/audit/seals").json()["items"]
    verified = cli.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and "seal(s) checked: intact" in verified.output
    with runtime.Db.begin() as db:
        db.execute(delete(Delivery).where(Delivery.id == deliveries[3]))
    tampered = cli.invoke(args=["audit", "verify"])
    assert tampered.exit_code == 1
    assert f"delivery {deliveries[3]}: removed" in tampered.output and "TAMPERED" in tampered.output


def drop_seals_from(db: Session, day: date) -> None:
    """Delete the seals of `day` and after, with their sealed records, as someone able to rewrite rows can."""
    newest = select(Seal.id).where(Seal.day >= day)
    db.execute(delete(SealedRecord).where(SealedRecord.seal_id.in_(newest)))
    db.execute(delete(Seal).where(Seal.day >= day))


def test_a_closed_day_with_records_and_no_seal_is_named(api: httpx.Client) -> None:
    runtime, _, _, _ = arranged(api)
    two_days_ago = (utcnow() - timedelta(days=2)).date()
    with runtime.Db.begin() as db:  # the newest seals, deleted before the job seals their days again
        drop_seals_from(db, two_days_ago)

    intact, found = findings(api)

    assert not intact and found == {("unsealed", None, None, None)}
    assert verified(api)["findings"][0]["day"] == two_days_ago.isoformat()


def test_verify_against_a_kept_copy_names_seals_taken_again_or_missing(
    app: Flask, api: httpx.Client, tmp_path: Path
) -> None:
    runtime, _, deliveries, _ = arranged(api)
    commands.register(app)
    cli = app.test_cli_runner()
    copy = cli.invoke(args=["audit", "seals"]).output
    two_days_ago = (utcnow() - timedelta(days=2)).date()
    with runtime.Db.begin() as db:  # rewrite a row, delete the seals from its day on, let the job seal again
        db.execute(update(Delivery).where(Delivery.id == deliveries[3]).values(name="Mallory"))
        drop_seals_from(db, two_days_ago)
    seal(runtime)
    assert findings(api) == (True, set())  # the database agrees with itself

    checked = verified(api, copy)

    differs = {(item["day"], item["problem"]) for item in checked["findings"]}
    assert not checked["intact"] and (two_days_ago.isoformat(), "seal-differs") in differs
    assert {problem for _, problem in differs} == {
        "seal-differs"
    }  # the days after chain to it: they differ too
    with runtime.Db.begin() as db:
        drop_seals_from(db, two_days_ago)
    kept = tmp_path / "kept-seals.ndjson"
    kept.write_text(copy, encoding="utf-8")
    missing = cli.invoke(args=["audit", "verify", "--against", str(kept)])
    assert missing.exit_code == 1
    assert f"{two_days_ago} seal: seal-missing" in missing.output
    assert f"{two_days_ago} seal: unsealed" in missing.output
    kept.write_text(copy + "{not json\n", encoding="utf-8")
    refused = cli.invoke(args=["audit", "verify", "--against", str(kept)])
    assert refused.exit_code == 2 and "line " in refused.output


def test_a_bad_kept_copy_is_422_naming_each_line_and_field(api: httpx.Client) -> None:
    arranged(api)
    [first, *_] = api.get("/api/audit/seals").json()["items"]
    body = "\n".join([json.dumps(first), "{not json", json.dumps({**first, "merkleRoot": 7})])
    refused = api.post("/api/audit/verify", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert refused.status_code == 422
    assert [error["field"] for error in refused.json()["errors"]] == ["line 2", "line 3.merkleRoot"]
