"""Bulk replay over HTTP: queue one job that replays every matching delivery, and show its progress."""

from __future__ import annotations

from flask import Blueprint, current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem
from webhooks.rooms import json_object
from workers.audit import current_request_id
from workers.bulk_replay import ReplayFilter, enqueue_replay
from workers.wire import BulkReplayQueued, JobProgress

blueprint = Blueprint("bulk_replay", __name__)


@blueprint.post("/api/events/replay")
@require_token
def replay_matching_deliveries() -> tuple[dict[str, object], int]:
    """Queue one job replaying every delivery the body's room, status and since match; answer 202."""
    wanted = ReplayFilter.model_validate(json_object())
    runtime = runtime_of(current_app)
    job = enqueue_replay(runtime.queue(), wanted, api_actor(), current_request_id.get())
    return BulkReplayQueued(job_id=job.id).answer(), 202


@blueprint.get("/api/jobs/<job_id>")
@require_token
def show_job(job_id: str) -> dict[str, object]:
    """Show a queued job's state and progress (a bulk replay's, a rebuild's)."""
    try:
        job = Job.fetch(job_id, connection=runtime_of(current_app).redis)
    except (NoSuchJobError, ValueError):  # ValueError: not even a job id (RQ allows letters, digits, - and _)
        raise Problem(404, "Job not found", f"No job {job_id}, or it finished too long ago.") from None
    progress = {key: value for key, value in job.get_meta().items() if isinstance(value, int)}
    return JobProgress(id=job.id, status=job.get_status().value, progress=progress).answer()
