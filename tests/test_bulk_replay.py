"""Bulk replay: one job replays every delivery a filter matches, with its progress, API and CLI alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from rq.job import Job, JobStatus
from sqlalchemy import func, select, text

from tests.conftest import WorkerProcess, run_worker
from tests.test_audit import post
from tests.test_inbox import arrival, make_room
from tests.test_jobs import poisoned
from tests.test_seals import JOIN
from webhooks import cli as commands
from webhooks import runtime_of
from workers import inbox
from workers.bulk_replay import BATCH_SIZE, REPLAY_RETRY, REPLAY_TIMEOUT_SECONDS
from workers.jobs import relay_rooms
from workers.models import Delivery
from workers.runtime import process
from workers.runtime.process import Runtime
from workers.runtime.settings import Settings


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


class refusing_reset:
    """Make the database refuse to set one delivery back to queued: the replay's batch holding it fails."""

    def __init__(self, runtime: Runtime, delivery_id: int) -> None:
        self.runtime, self.delivery_id = runtime, delivery_id
        self.sqlite = runtime.engine.dialect.name == "sqlite"

    def __enter__(self) -> None:
        when = f"NEW.status = 'queued' AND NEW.id = {self.delivery_id}"
        statements = (
            [
                f"CREATE TRIGGER refuse BEFORE UPDATE ON deliveries WHEN {when} "
                "BEGIN SELECT RAISE(ABORT, 'no'); END"
            ]
            if self.sqlite
            else [
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no'; END $$ "
                "LANGUAGE plpgsql",
                f"CREATE TRIGGER refuse BEFORE UPDATE ON deliveries FOR EACH ROW WHEN ({when}) "
                "EXECUTE FUNCTION refuse()",
            ]
        )
        with self.runtime.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    def __exit__(self, *exc: object) -> None:
        with self.runtime.engine.begin() as connection:
            connection.execute(
                text("DROP TRIGGER refuse" if self.sqlite else "DROP TRIGGER refuse ON deliveries")
            )
            if not self.sqlite:
                connection.execute(text("DROP FUNCTION refuse()"))


def wait_for(check: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_replay_that_fails_mid_way_in_a_worker_process_resumes_and_folds_each_delivery_once(
    api: httpx.Client, settings: Settings, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    room_id, _ = make_room(runtime)
    ids = [inbox.store(runtime.engine, arrival(room_id, JOIN % (n, n))).id for n in range(BATCH_SIZE * 2 + 1)]
    relay_rooms(runtime, None)
    run_worker(runtime)
    assert fold_counts(runtime) == {1: len(ids)}
    in_second_batch = ids[BATCH_SIZE + BATCH_SIZE // 2]

    with refusing_reset(runtime, in_second_batch):
        job_id = api.post("/api/events/replay", json={"room": "standup"}).json()["jobId"]
        assert settings.database_url is not None
        worker = spawn_worker(settings.database_url, settings.redis_url)
        job = Job.fetch(job_id, connection=runtime.redis)
        # The first batch is reset and signalled, the second fails: RQ schedules the job's retry.
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.SCHEDULED)
    assert job.get_meta(refresh=True)["replayed"] == BATCH_SIZE

    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED)  # the retry, the cause gone
    wait_for(lambda: fold_counts(runtime) == {2: len(ids)})  # every delivery folded once more, none twice
    assert worker.alive()
    assert api.get(f"/api/jobs/{job_id}").json()["progress"] == {"matched": len(ids), "replayed": len(ids)}
    started = api.get("/api/audit", params={"action": "delivery.bulk_replay_started"}).json()["items"]
    [finished] = api.get("/api/audit", params={"action": "delivery.bulk_replayed"}).json()["items"]
    assert len(started) == 1 and finished["after"]["replayed"] == len(ids)


def fold_counts(runtime: Runtime) -> dict[int, int]:
    """Return how many processed deliveries were folded how many times."""
    query = select(Delivery.fold_count, func.count()).where(Delivery.status == "processed")
    with runtime.Db() as db:
        return {folds: count for folds, count in db.execute(query.group_by(Delivery.fold_count))}
