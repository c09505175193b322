"""Operations on a meeting session: rebuild it from the stored raw deliveries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from sqlalchemy import select

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import Problem
from workers.models import MeetingSession
from workers.session_jobs import rebuild_session

blueprint = Blueprint("session_admin", __name__)


@blueprint.post("/api/sessions/<meeting_session_id>/rebuild")
@require_token
def rebuild(meeting_session_id: str) -> tuple[dict[str, Any], int]:
    """Queue a rebuild of the session from its stored deliveries; answer 202 with the job id."""
    runtime = runtime_of(current_app)
    with runtime.Session() as db:
        session_id = db.scalar(
            select(MeetingSession.id).where(MeetingSession.meeting_session_id == meeting_session_id)
        )
    if session_id is None:
        raise Problem(404, "Not Found", f"no meeting session {meeting_session_id!r}")
    job = runtime.queue().enqueue(rebuild_session, session_id)
    return {"queued": True, "jobId": job.id, "meetingSessionId": meeting_session_id}, 202
