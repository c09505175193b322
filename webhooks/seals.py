"""Seals API: the daily seals, for an auditor to keep elsewhere, and a verify of the log against them."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import select

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.pagination import page_of, requested_page
from workers import verification
from workers.models import Seal
from workers.wire import SealPage, seal_out, verification_out

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
        found = verification.verify(db)
    return jsonify(verification_out(found).answer())
