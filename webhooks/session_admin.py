"""Operations on a meeting session: rebuild it from its stored deliveries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.reports import session_or_404
from workers.jobs import rebuild_session
from workers.wire import RebuildQueued

blueprint = Blueprint("session_admin", __name__)


@blueprint.post("/api/sessions/<id:meeting_session_id>/rebuild")
@require_token
def rebuild(meeting_session_id: str) -> tuple[dict[str, Any], int]:
    """Queue a rebuild of the session from its stored deliveries; answer 202 with the job id."""
    runtime = runtime_of(current_app)
    with runtime.Db() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
    job = runtime.queue().enqueue(rebuild_session, meeting.id)
    return RebuildQueued(queued=True, job_id=job.id, meeting_session_id=meeting_session_id).answer(), 202
