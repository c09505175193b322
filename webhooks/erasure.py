"""Erasure API: replace one person's personal data with a pseudonym everywhere (workers.erasure)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem
from workers.erasure import UnknownPerson, erase_person
from workers.models.base import utcnow
from workers.wire import person_erased_out

blueprint = Blueprint("erasure", __name__)


@blueprint.post("/api/people/<id:participant_key>/erase")
@require_token
def erase(participant_key: str) -> Response:
    """Erase one person: their name, email and externalUserId become a pseudonym; figures stay."""
    try:
        with runtime_of(current_app).Db.begin() as db:
            erased = erase_person(db, participant_key, api_actor(), utcnow())
    except UnknownPerson:
        raise Problem(
            404, "Not Found", "No attendance, participant session or roster row has this key."
        ) from None
    return jsonify(person_erased_out(erased).answer())
