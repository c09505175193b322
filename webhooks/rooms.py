"""Room management API: create, list, show, change and archive Metered rooms, and rotate their tokens."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.pagination import page_of, requested_page, whole_number
from workers import rooms
from workers.metered import MeteredClient, MeteredError, MeteredNotConfigured, MeteredTimeout
from workers.rooms import CreateRoomRequest, UpdateRoomRequest
from workers.wire import RoomPage, room_out, rotation_out

blueprint = Blueprint("rooms", __name__)


@blueprint.post("/api/rooms")
@require_token
def create_room() -> tuple[Response, int, dict[str, str]]:
    """Create a room at Metered whose webhooks point here; answer 201 with it and its webhook URLs."""
    options = CreateRoomRequest.model_validate(json_object())
    runtime = runtime_of(current_app)
    with MeteredClient.from_settings(runtime.settings) as metered:
        room, urls = rooms.create_room(runtime.Db, metered, runtime.settings, options, api_actor())
    return jsonify(room_out(room, urls).answer()), 201, {"Location": f"/api/rooms/{room.room_name}"}


@blueprint.get("/api/rooms")
@require_token
def list_rooms() -> Response:
    """List the rooms, oldest first, a page at a time (`?includeArchived=true` adds archived ones)."""
    page = requested_page()
    found = rooms.list_rooms(
        runtime_of(current_app).Db,
        limit=page.limit + 1,
        after=page.after,
        include_archived=flag("includeArchived"),
    )
    return jsonify(page_of(RoomPage, found, page, room_out, lambda room: room.id).answer())


@blueprint.get("/api/rooms/<room_name>")
@require_token
def show_room(room_name: str) -> Response:
    """Show one room."""
    return jsonify(room_out(rooms.get_room(runtime_of(current_app).Db, room_name)).answer())


@blueprint.patch("/api/rooms/<room_name>")
@require_token
def update_room(room_name: str) -> Response:
    """Change a room's options through Metered's update API, and its Rollcall-only fields."""
    changes = UpdateRoomRequest.model_validate(json_object())
    runtime = runtime_of(current_app)
    with MeteredClient.from_settings(runtime.settings) as metered:
        room = rooms.update_room(runtime.Db, metered, room_name, changes, api_actor())
    return jsonify(room_out(room).answer())


@blueprint.delete("/api/rooms/<room_name>")
@require_token
def archive_room(room_name: str) -> Response:
    """Archive a room at Metered; its attendance history stays."""
    runtime = runtime_of(current_app)
    with MeteredClient.from_settings(runtime.settings) as metered:
        room = rooms.archive_room(runtime.Db, metered, room_name, api_actor())
    return jsonify(room_out(room).answer())


@blueprint.post("/api/rooms/<room_name>/rotate-token")
@require_token
def rotate_token(room_name: str) -> Response:
    """Give a room, archived or not, a new webhook token; the old one keeps working for the overlap."""
    runtime = runtime_of(current_app)
    overlap = _overlap_seconds(runtime.settings.token_overlap_seconds)
    with MeteredClient.from_settings(runtime.settings) as metered:
        rotation = rooms.rotate_token(runtime.Db, metered, runtime.settings, room_name, api_actor(), overlap)
    shown = rotation_out(rotation.room, rotation.webhook_urls, rotation.metered_updated)
    return jsonify(shown.answer())


def json_object() -> Any:
    """Return the request's JSON body ({} if empty); 415 if it is not JSON, 400 if it does not parse."""
    # An empty body means "no options"; anything else must be JSON (the model refuses a non-object).
    if not request.get_data():
        return {}
    if not request.is_json:
        raise Problem(415, "Unsupported Media Type", "Send the body as application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise Problem(400, "Bad Request", "The body is not valid JSON.")
    return body


def _overlap_seconds(longest: int) -> int | None:
    # Only shorter than TOKEN_OVERLAP_SECONDS: the reason to choose is a leaked token (0 revokes it now).
    value = request.args.get("overlapSeconds")
    if value is None:
        return None
    seconds = whole_number(value, 0, longest)
    if seconds is None:
        message = f"must be a whole number of seconds from 0 to {longest}"
        raise invalid_fields([{"field": "overlapSeconds", "message": message}])
    return seconds


def flag(name: str) -> bool:
    """Return the query parameter `name` read as true or false (absent: false); 422 naming it otherwise."""
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid_fields([{"field": name, "message": "must be true or false"}])
    return value in ("true", "1")


@blueprint.errorhandler(rooms.RoomNotFound)
def _not_found(error: rooms.RoomNotFound) -> Response:
    return Problem(404, "Room not found", f"There is no room named {error}.").to_response()


@blueprint.errorhandler(rooms.RoomNameTaken)
def _name_taken(error: rooms.RoomNameTaken) -> Response:
    return Problem(409, "Room name taken", f"A room named {error} exists already.").to_response()


@blueprint.errorhandler(rooms.RoomArchived)
def _archived(error: rooms.RoomArchived) -> Response:
    return Problem(409, "Room archived", f"The room {error} is archived and cannot be changed.").to_response()


@blueprint.errorhandler(MeteredError)
def _metered_failed(error: MeteredError) -> Response:
    if isinstance(error, MeteredTimeout):
        return Problem(504, "Metered timeout", error.message).to_response()
    if isinstance(error, MeteredNotConfigured):
        return Problem(503, "Metered not configured", error.message).to_response()
    problem = Problem(502, "Metered error", error.message)
    extra = {"meteredStatus": error.status, "eventCode": error.event_code}
    problem.extra.update({key: value for key, value in extra.items() if value is not None})
    return problem.to_response()
