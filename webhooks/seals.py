"""Seals API: the daily seals, for an auditor to keep elsewhere, and a verify of the log against them
(and against the auditor's copy, which rows rewritten and sealed again cannot match)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import ValidationError
from sqlalchemy import select

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import invalid_fields
from webhooks.pagination import page_of, requested_page
from workers import verification
from workers.deliveries.parsing import field_errors
from workers.models import Seal
from workers.models.base import utcnow
from workers.wire import SealOut, SealPage, seal_out, verification_out

blueprint = Blueprint("seals", __name__)


@blueprint.get("/api/audit/seals")
@require_token
def list_seals() -> Response:
    """List the seals, oldest day first."""
    page = requested_page()
    query = select(Seal).order_by(Seal.id).limit(page.limit + 1)
    if page.after is not None:
        query = query.where(Seal.id > page.after)
    with runtime_of(current_app).Db() as db:
        seals = list(db.scalars(query))
    return jsonify(page_of(SealPage, seals, page, seal_out, lambda seal: seal.id).answer())


@blueprint.get("/api/audit/verify")
@require_token
def verify() -> Response:
    """Recompute every seal; name each record changed, added, removed or redacted since it was sealed."""
    with runtime_of(current_app).Db() as db:
        found = verification.verify(db, utcnow())
    return jsonify(verification_out(found).answer())


@blueprint.post("/api/audit/verify")
@require_token
def verify_against_copy() -> Response:
    """Verify as GET does, and hold the body's seals (as GET /api/audit/seals gave them, NDJSON) to the
    database's."""
    kept = kept_seals(request.get_data().decode("utf-8", "replace"))
    with runtime_of(current_app).Db() as db:
        found = verification.verify(db, utcnow(), kept)
    return jsonify(verification_out(found).answer())


def kept_seals(ndjson: str) -> list[SealOut]:
    """Read a copy of the seals, one JSON object a line; 422 naming each bad line ("line 3.merkleRoot")."""
    kept, errors = [], []
    for number, line in enumerate(ndjson.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            kept.append(SealOut.model_validate_json(line))
        except ValidationError as error:
            errors.extend(field_errors(error, (f"line {number}",)))
    if errors:
        raise invalid_fields(errors)
    return kept
