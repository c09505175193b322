"""The audit log of webhook deliveries: list them with what became of each, and replay one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, or_, select

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.pagination import Page, page_of, requested_page
from workers import jobs
from workers.deliveries.parsing import EVENTS, media_type, metered_time, read_json
from workers.models import Delivery, DeliveryStatus, MeetingSession, Room
from workers.wire import EventPage, ReplayQueued, StoredEvent

blueprint = Blueprint("audit", __name__)

STATUSES = tuple(status.value for status in DeliveryStatus)
Row = tuple[Delivery, str, str | None]


@blueprint.get("/api/events")
@require_token
def list_events() -> Response:
    """List stored deliveries, newest first: ?room=&session=&type=&status=&since=&limit=&cursor=."""
    page = requested_page()
    query = _filtered(_base_query(page))
    with runtime_of(current_app).Db() as db:
        rows: list[Row] = [(delivery, room, ref) for delivery, room, ref in db.execute(query)]
    return jsonify(page_of(EventPage, rows, page, stored_event, lambda row: row[0].id).answer())


@blueprint.post("/api/events/<int(max=9223372036854775807):delivery_id>/replay")
@require_token
def replay(delivery_id: int) -> tuple[Response, int]:
    """Fold one stored delivery again: back to unprocessed, and its room signalled."""
    status = jobs.replay(runtime_of(current_app), delivery_id, api_actor())
    if status is None:
        raise Problem(404, "Not Found", f"No delivery {delivery_id}.")
    return jsonify(ReplayQueued(id=delivery_id, status=status).answer()), 202


def _base_query(page: Page) -> Select[Delivery, str, str]:
    query = (
        select(Delivery, Room.room_name, MeetingSession.meeting_session_id)
        .join(Room, Room.id == Delivery.room_id)
        .outerjoin(MeetingSession, MeetingSession.id == Delivery.session_id)
        .order_by(Delivery.id.desc())
        .limit(page.limit + 1)
    )
    return query if page.after is None else query.where(Delivery.id < page.after)


def _filtered(query: Select[Delivery, str, str]) -> Select[Delivery, str, str]:
    args, errors = request.args, []
    if room := args.get("room"):
        query = query.where(Room.room_name == room)
    if meeting := args.get("session"):
        folded = select(MeetingSession.id).where(MeetingSession.meeting_session_id == meeting)
        query = query.where(or_(Delivery.meeting_session_ref == meeting, Delivery.session_id.in_(folded)))
    if (event := args.get("type")) is not None:
        query = query.where(Delivery.event == event)
        if event not in EVENTS:
            errors.append({"field": "type", "message": f"must be one of {', '.join(EVENTS)}"})
    if (status := args.get("status")) is not None:
        # A duplicate is never a row of its own: it is counted on the delivery it repeats.
        clause = Delivery.duplicate_count > 0 if status == "duplicate" else Delivery.status == status
        query = query.where(clause)
        if status not in STATUSES:
            errors.append({"field": "status", "message": f"must be one of {', '.join(STATUSES)}"})
    if (since := args.get("since")) is not None:
        query = query.where(Delivery.received_at >= _since(since, errors))
    if errors:
        raise invalid_fields(errors)
    return query


def _since(text: str, errors: list[dict[str, str]]) -> datetime:
    try:
        return metered_time(text)
    except PydanticCustomError:
        errors.append({"field": "since", "message": "not a readable time: use ISO-8601"})
        return datetime.min.replace(tzinfo=UTC)


def stored_event(row: Row) -> StoredEvent:
    """Map one stored delivery, its room's name and its session's id to its wire shape."""
    delivery, room_name, folded_into = row
    return StoredEvent(
        id=delivery.id,
        room=room_name,
        event=delivery.event,
        status=DeliveryStatus(delivery.status),
        status_reason=delivery.status_reason,
        received_at=delivery.received_at,
        event_time=delivery.event_time,
        time_reported=delivery.time_reported,
        processed_at=delivery.processed_at,
        dedupe_key=delivery.dedupe_key,
        duplicate_count=delivery.duplicate_count,
        meeting_session_id=folded_into or delivery.meeting_session_ref,
        participant_session_id=delivery.participant_session_id,
        content_type=delivery.content_type,
        raw_body=_raw_body(delivery),
        headers=delivery.headers,
        source_address=delivery.source_address,
        redaction=delivery.redaction,
        redacted_at=delivery.redacted_at,
    )


def _raw_body(delivery: Delivery) -> Any:
    if "json" in media_type(delivery.content_type):
        try:
            # The receiver's own reader: a body stored before it refused deep nesting or 1e400 comes back
            # as its text, which any JSON encoder can write.
            return read_json(delivery.raw_body)
        except ValueError:
            pass
    return delivery.raw_body
