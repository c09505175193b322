"""Seals API: the daily seals, for an auditor to keep elsewhere, and a verify of the log against them
(and against the auditor's copy, which rows rewritten and sealed again cannot match), run as a job."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import ValidationError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.pagination import page_of, requested_page
from workers.deliveries.parsing import field_errors
from workers.models import Seal
from workers.verify_jobs import enqueue_verification, is_verification
from workers.wire import (
    AuditVerification,
    SealOut,
    SealPage,
    VerificationProgress,
    VerificationQueued,
    seal_out,
)

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


@blueprint.post("/api/audit/verify")
@require_token
def start_verification() -> tuple[Response, int, dict[str, str]]:
    """Queue a verify of every seal, held also to the body's copy of the seals (NDJSON, as GET
    /api/audit/seals gave them; may be empty); answer 202 with its job, whose progress is at Location."""
    kept = kept_seals(request.get_data().decode("utf-8", "replace"))
    job = enqueue_verification(runtime_of(current_app).queue(), kept)
    location = f"/api/audit/verify/{job.id}"
    return jsonify(VerificationQueued(job_id=job.id).answer()), 202, {"Location": location}


@blueprint.get("/api/audit/verify/<job_id>")
@require_token
def show_verification(job_id: str) -> Response:
    """Show a verify's progress and, once it has finished, every record and seal it found wrong."""
    try:
        job = Job.fetch(job_id, connection=runtime_of(current_app).redis)
    except (NoSuchJobError, ValueError):  # ValueError: not even a job id
        job = None
    if job is None or not is_verification(job):
        raise Problem(404, "Verification not found", f"No verification {job_id}, or it is too old.")
    meta, status = job.get_meta(), job.get_status()
    shown = VerificationProgress(
        id=job.id, status=status.value, checked=meta.get("checked", 0), seals=meta.get("seals")
    )
    if status == JobStatus.FINISHED:
        shown.result = AuditVerification.model_validate(job.return_value())
    return jsonify(shown.answer())


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
