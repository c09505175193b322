"""The audit log's export: deliveries or management records for a time range, as NDJSON, streamed.

Lines come oldest first, one JSON object each, in the same shape `GET /api/events` and `GET /api/audit`
list them. The export is resumable: a client whose download broke asks again with `cursor=<id of the
last line it kept>` and gets the lines after it. It reads in batches, one short database transaction
each, so a year of deliveries neither holds a transaction open nor sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, request, stream_with_context
from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from webhooks import runtime_of
from webhooks.audit import stored_event
from webhooks.audit_records import audit_entry, records_query, requested_range
from webhooks.auth import require_token
from webhooks.errors import invalid_fields
from webhooks.pagination import MAX_ID, whole_number
from workers.models import AuditRecord, Delivery, MeetingSession, Room

blueprint = Blueprint("audit_export", __name__)

KINDS = ("deliveries", "management")
# What one kind exports: its rows oldest first, the id they are ordered by, and each row's wire shape.
Source = tuple[Select[*tuple[Any, ...]], InstrumentedAttribute[int], Callable[[Any], dict[str, Any]]]
BATCH_SIZE = 500
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class ExportRange:
    """What to export: a kind of record, received (or made) at or after `since` and before `until`."""

    kind: str  # one of KINDS
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None  # the cursor: the id of the last line already exported


@blueprint.get("/api/audit/export")
@require_token
def export() -> Response:
    """Stream deliveries or management records as NDJSON, oldest first: ?kind=&since=&until=&cursor=."""
    wanted = _requested_range()
    lines = export_lines(runtime_of(current_app).Db, wanted)
    return Response(stream_with_context(lines), mimetype=NDJSON)


def export_lines(Db: sessionmaker[Session], wanted: ExportRange) -> Iterator[str]:
    """Yield the range's records as JSON lines, oldest first, reading a batch at a time."""
    query, id_column, show = _deliveries(wanted) if wanted.kind == "deliveries" else _management(wanted)
    after = wanted.after_id
    while True:
        batch_query = query if after is None else query.where(id_column > after)
        with Db() as db:
            rows = list(db.execute(batch_query.limit(BATCH_SIZE)))
        for row in rows:
            yield json.dumps(show(row), ensure_ascii=False) + "\n"
        if len(rows) < BATCH_SIZE:
            return
        after = rows[-1][0].id


def _deliveries(wanted: ExportRange) -> Source:
    query = (
        select(Delivery, Room.room_name, MeetingSession.meeting_session_id)
        .join(Room, Room.id == Delivery.room_id)
        .outerjoin(MeetingSession, MeetingSession.id == Delivery.session_id)
        .order_by(Delivery.id)
    )
    if wanted.since is not None:
        query = query.where(Delivery.received_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(Delivery.received_at < wanted.until)
    return query, Delivery.id, lambda row: stored_event(row).answer()


def _management(wanted: ExportRange) -> Source:
    query = records_query().order_by(AuditRecord.id)
    if wanted.since is not None:
        query = query.where(AuditRecord.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditRecord.at < wanted.until)
    return query, AuditRecord.id, lambda row: audit_entry(row).answer()


def _requested_range() -> ExportRange:
    errors: list[dict[str, str]] = []
    kind = request.args.get("kind", "")
    if kind not in KINDS:
        errors.append({"field": "kind", "message": f"must be one of {', '.join(KINDS)}"})
    since, until = requested_range(errors)
    cursor = request.args.get("cursor")
    after_id = None if cursor is None else whole_number(cursor, 0, MAX_ID)
    if cursor is not None and after_id is None:
        errors.append({"field": "cursor", "message": "must be the id of the last line already exported"})
    if errors:
        raise invalid_fields(errors)
    return ExportRange(kind, since, until, after_id)
