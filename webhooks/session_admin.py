"""Operations on a meeting session: rebuild it from its stored deliveries, and override a person's status."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem
from webhooks.reports import session_or_404
from webhooks.rooms import json_object
from workers import overrides
from workers.audit import current_request_id
from workers.jobs import rebuild_session
from workers.overrides import OverrideRequest
from workers.wire import RebuildQueued

blueprint = Blueprint("session_admin", __name__)

PERSON_STATUS = "/api/sessions/<id:meeting_session_id>/people/<id:participant_key>/status"


@blueprint.post("/api/sessions/<id:meeting_session_id>/rebuild")
@require_token
def rebuild(meeting_session_id: str) -> tuple[dict[str, Any], int]:
    """Queue a rebuild of the session from its stored deliveries; answer 202 with the job id."""
    runtime = runtime_of(current_app)
    with runtime.Db() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
    job = runtime.queue().enqueue(rebuild_session, meeting.id, api_actor(), current_request_id.get())
    return RebuildQueued(queued=True, job_id=job.id, meeting_session_id=meeting_session_id).answer(), 202


@blueprint.put(PERSON_STATUS)
@require_token
def override_status(meeting_session_id: str, participant_key: str) -> dict[str, Any]:
    """Set a person's status in the session by hand, with an optional reason; answer their status now."""
    wanted = OverrideRequest.model_validate(json_object())
    runtime = runtime_of(current_app)
    with runtime.Db.begin() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
        judged, amendment = overrides.set_override(db, meeting, participant_key, wanted, api_actor())
    overrides.announce(runtime.queue(), amendment)
    return judged.answer()


@blueprint.delete(PERSON_STATUS)
@require_token
def clear_override(meeting_session_id: str, participant_key: str) -> tuple[str, int]:
    """Remove a person's status override in the session: the computed status stands again."""
    runtime = runtime_of(current_app)
    with runtime.Db.begin() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
        amendment = overrides.clear_override(db, meeting, participant_key, api_actor())
    overrides.announce(runtime.queue(), amendment)
    return "", 204


@blueprint.errorhandler(overrides.UnknownPerson)
def _unknown_person(error: overrides.UnknownPerson) -> Response:
    detail = f"{error} neither attended this meeting session nor was on its roster."
    return Problem(404, "Person not found", detail).to_response()


@blueprint.errorhandler(overrides.NoOverride)
def _no_override(error: overrides.NoOverride) -> Response:
    detail = f"{error} has no status override in this session."
    return Problem(404, "Override not found", detail).to_response()
