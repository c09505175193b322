"""Bulk replay: one job replays every delivery a filter matches, with its progress, API and CLI alike."""

from __future__ import annotations

import httpx
from rq.job import Job
from sqlalchemy import select

from tests.conftest import run_worker
from tests.test_audit import post
from tests.test_inbox import make_room
from tests.test_jobs import poisoned
from webhooks import cli as commands
from webhooks import runtime_of
from workers.bulk_replay import REPLAY_RETRY, REPLAY_TIMEOUT_SECONDS
from workers.models import Delivery
from workers.runtime import process
from workers.runtime.process import Runtime


def fates(runtime: Runtime) -> dict[str, tuple[str, int]]:
    """Return each delivery's participant session id with its status and how many times it was folded."""
    query = select(Delivery.participant_session_id, Delivery.status, Delivery.fold_count)
    with runtime.Db() as db:
        return {str(ps): (status, folds) for ps, status, folds in db.execute(query)}


def fail_some(api: httpx.Client) -> Runtime:
    """Store deliveries in two rooms, of which ps-1, ps-2 (standup) and ps-9 (retro) fail to fold."""
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    standup, retro = make_room(runtime)[1], make_room(runtime, "retro", "r-2")[1]
    for first, failing in ((0, 1), (2, 2)):
        post(api, standup, first)
        post(api, standup, first + 1)
        with poisoned(runtime, f"participant-joined:ms-1:ps-{failing}"):
            run_worker(runtime)
    post(api, retro, 9, meeting="ms-2", room="retro")
    with poisoned(runtime, "participant-joined:ms-2:ps-9"):
        run_worker(runtime)
    assert {ps for ps, (status, _) in fates(runtime).items() if status == "failed"} == {
        "ps-1",
        "ps-2",
        "ps-9",
    }
    return runtime


def test_a_bulk_replay_of_failed_deliveries_after_their_cause_is_fixed_folds_them_all_once(
    api: httpx.Client,
) -> None:
    runtime = fail_some(api)  # the triggers are gone: the cause is fixed
    queued = api.post("/api/events/replay", json={"room": "standup", "status": "failed"})
    assert queued.status_code == 202, queued.text
    run_worker(runtime)  # the replay job, then the drain it signals
    assert fates(runtime) == {
        "ps-0": ("processed", 1),
        "ps-1": ("processed", 1),
        "ps-2": ("processed", 1),
        "ps-3": ("processed", 1),
        "ps-9": ("failed", 0),  # another room: not matched
    }
    job = api.get(f"/api/jobs/{queued.json()['jobId']}").json()
    assert job == {
        "id": queued.json()["jobId"],
        "status": "finished",
        "progress": {"matched": 2, "replayed": 2},
    }
    [recorded] = api.get("/api/audit", params={"action": "delivery.bulk_replayed"}).json()["items"]
    assert recorded["actor"] == "api"
    assert recorded["after"] == {"room": "standup", "status": "failed", "since": None, "replayed": 2}
    [started] = api.get("/api/audit", params={"action": "delivery.bulk_replay_started"}).json()["items"]
    assert started["id"] < recorded["id"]
    assert started["after"] == {
        "room": "standup",
        "status": "failed",
        "since": None,
        "lastId": 5,
        "matched": 2,
    }


def test_the_replay_job_has_hours_and_retries_and_a_retry_resumes_after_its_cursor(api: httpx.Client) -> None:
    runtime = fail_some(api)
    queued = api.post("/api/events/replay", json={"room": "standup"})
    job = Job.fetch(queued.json()["jobId"], connection=runtime.redis)
    assert (job.timeout, job.retries_left) == (REPLAY_TIMEOUT_SECONDS, REPLAY_RETRY.max)
    with runtime.Db() as db:
        ids = {
            ps: delivery_id
            for delivery_id, ps in db.execute(select(Delivery.id, Delivery.participant_session_id))
        }
    # As a first attempt leaves it after replaying ps-0 and ps-1 and failing on the next batch's signal.
    job.meta["cursor"] = {"last_id": ids["ps-3"], "matched": 4, "after": ids["ps-1"], "replayed": 2}
    job.save_meta()  # type: ignore[no-untyped-call]

    run_worker(runtime)

    assert fates(runtime) == {
        "ps-0": ("processed", 1),
        "ps-1": ("failed", 0),  # replayed by the first attempt, as far as the cursor says: not again
        "ps-2": ("processed", 1),
        "ps-3": ("processed", 2),
        "ps-9": ("failed", 0),
    }
    assert api.get(f"/api/jobs/{job.id}").json()["progress"] == {"matched": 4, "replayed": 4}
    assert api.get("/api/audit", params={"action": "delivery.bulk_replay_started"}).json()["items"] == []


def test_the_cli_replays_what_its_filters_match(api: httpx.Client) -> None:
    runtime = fail_some(api)
    cli = api.app.test_cli_runner()  # type: ignore[attr-defined]
    commands.register(api.app)  # type: ignore[attr-defined]
    refused = cli.invoke(args=["events", "replay", "1", "--status", "failed"])
    assert refused.exit_code != 0 and "not both" in refused.output
    replayed = cli.invoke(args=["events", "replay", "--status", "failed"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 3 deliveries" in replayed.output
    run_worker(runtime)
    assert {fate for fate in fates(runtime).values()} == {("processed", 1)}


def test_a_bad_filter_is_422_naming_each_field_and_an_unknown_job_404(api: httpx.Client) -> None:
    refused = api.post("/api/events/replay", json={"status": "lost", "since": "soon", "colour": 1})
    assert refused.status_code == 422
    assert sorted(error["field"] for error in refused.json()["errors"]) == ["colour", "since", "status"]
    assert api.get("/api/jobs/no-such-job").status_code == 404
