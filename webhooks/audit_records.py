"""The management audit: who changed what through the API or the CLI, listed and filtered like deliveries."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import invalid_fields
from webhooks.pagination import page_of, requested_page
from workers.deliveries.parsing import metered_time
from workers.models import AuditRecord, MeetingSession, Room
from workers.wire import AuditEntry, AuditPage

blueprint = Blueprint("audit_records", __name__)

Row = tuple[AuditRecord, str | None, str | None]
RecordQuery = Select[AuditRecord, str | None, str | None]
Errors = list[dict[str, str]]


@blueprint.get("/api/audit")
@require_token
def list_records() -> Response:
    """List management audit records, newest first: ?room=&session=&action=&actor=&since=&until=."""
    page = requested_page()
    query = records_query().order_by(AuditRecord.id.desc()).limit(page.limit + 1)
    if page.after is not None:
        query = query.where(AuditRecord.id < page.after)
    errors: Errors = []
    since, until = requested_range(errors)
    if errors:
        raise invalid_fields(errors)
    query = filtered(query)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if until is not None:
        query = query.where(AuditRecord.at < until)
    with runtime_of(current_app).Db() as db:
        rows: list[Row] = [(entry, room, meeting) for entry, room, meeting in db.execute(query)]
    return jsonify(page_of(AuditPage, rows, page, audit_entry, lambda row: row[0].id).answer())


def records_query() -> RecordQuery:
    """Select audit records with the name of their room and the id of their meeting session."""
    return (
        select(AuditRecord, Room.room_name, MeetingSession.meeting_session_id)
        .outerjoin(Room, Room.id == AuditRecord.room_id)
        .outerjoin(MeetingSession, MeetingSession.id == AuditRecord.session_id)
    )


def filtered(query: RecordQuery) -> RecordQuery:
    """Narrow `query` to the request's room, session, action and actor (each exact)."""
    args = request.args
    if room := args.get("room"):
        query = query.where(Room.room_name == room)
    if meeting := args.get("session"):
        query = query.where(MeetingSession.meeting_session_id == meeting)
    if action := args.get("action"):
        query = query.where(AuditRecord.action == action)
    if actor := args.get("actor"):
        query = query.where(AuditRecord.actor == actor)
    return query


def requested_range(errors: Errors) -> tuple[datetime | None, datetime | None]:
    """Return ?since= (at or after) and ?until= (before) as times, None where absent; note a bad one."""
    return _requested_time("since", errors), _requested_time("until", errors)


def _requested_time(name: str, errors: Errors) -> datetime | None:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return metered_time(text)
    except PydanticCustomError:
        errors.append({"field": name, "message": "not a readable time: use ISO-8601"})
        return None


def audit_entry(row: Row) -> AuditEntry:
    """Map one audit record, its room's name and its session's id to its wire shape."""
    entry, room_name, meeting_session_id = row
    return AuditEntry(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        room=room_name,
        meeting_session_id=meeting_session_id,
        subject=entry.subject,
        before=entry.before,
        after=entry.after,
        request_id=entry.request_id,
        redaction=entry.redaction,
        redacted_at=entry.redacted_at,
    )
