"""Roster API: who a room expects. List (as now or at any moment), add, change, remove, import a CSV."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic_core import PydanticCustomError

from webhooks import runtime_of
from webhooks.auth import api_actor, require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.pagination import page_of, requested_page
from webhooks.rooms import flag, json_object
from workers import roster
from workers.deliveries.parsing import metered_time
from workers.models.base import utcnow
from workers.rooms import RoomNotFound
from workers.roster import AddMemberRequest, UpdateMemberRequest, member_of
from workers.roster_csv import parse_csv
from workers.wire import RosterHistory, RosterImported, RosterPage, roster_change_out, roster_member_out

blueprint = Blueprint("roster", __name__)

# text/plain too: what many clients label a file they upload as it is.
CSV_TYPES = frozenset({"text/csv", "text/plain"})


@blueprint.get("/api/rooms/<room_name>/roster")
@require_token
def list_members(room_name: str) -> Response:
    """List the room's roster, by participant key: as it is now, or as it was `?at=` a moment."""
    page = requested_page("key")
    at = _moment("at") or utcnow()
    rows = roster.list_members(runtime_of(current_app), room_name, at, page.after_key, page.limit + 1)
    listing = page_of(RosterPage, rows, page, roster_member_out, lambda row: row.participant_key)
    return jsonify(listing.answer())


@blueprint.get("/api/rooms/<room_name>/roster/history")
@require_token
def roster_history(room_name: str) -> Response:
    """List the changes to the room's roster, newest first: who added, changed or removed whom, and when."""
    page = requested_page()
    rows = roster.history(runtime_of(current_app), room_name, page.after, page.limit + 1)
    return jsonify(page_of(RosterHistory, rows, page, roster_change_out, lambda row: row.id).answer())


@blueprint.post("/api/rooms/<room_name>/roster")
@require_token
def add_member(room_name: str) -> tuple[Response, int, dict[str, str]]:
    """Put a person on the room's roster; answer 201 with them (409 if they are on it already)."""
    body = AddMemberRequest.model_validate(json_object())
    row = roster.add(runtime_of(current_app), room_name, member_of(body), body.effectiveFrom, api_actor())
    location = f"/api/rooms/{room_name}/roster/{quote(row.participant_key, safe='')}"
    return jsonify(roster_member_out(row).answer()), 201, {"Location": location}


@blueprint.patch("/api/rooms/<room_name>/roster/<id:participant_key>")
@require_token
def update_member(room_name: str, participant_key: str) -> Response:
    """Change a roster member's name, email, role or group from `effectiveFrom` (default now)."""
    changes = UpdateMemberRequest.model_validate(json_object())
    row = roster.update(runtime_of(current_app), room_name, participant_key, changes, api_actor())
    return jsonify(roster_member_out(row).answer())


@blueprint.delete("/api/rooms/<room_name>/roster/<id:participant_key>")
@require_token
def remove_member(room_name: str, participant_key: str) -> Response:
    """Take a person off the room's roster from `?effectiveFrom=` (default now); answer their closed entry."""
    effective = _moment("effectiveFrom")
    row = roster.remove(runtime_of(current_app), room_name, participant_key, effective, api_actor())
    return jsonify(roster_member_out(row).answer())


@blueprint.post("/api/rooms/<room_name>/roster/import")
@require_token
def import_members(room_name: str) -> Response:
    """Add or update every member of a CSV (`?replace=true`: remove the rest), or none if a row is bad."""
    if request.mimetype not in CSV_TYPES:
        raise Problem(415, "Unsupported Media Type", "Send the roster as text/csv.")
    try:
        text = request.get_data().decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "Bad Request", "The CSV is not UTF-8 text.") from None
    replace_all = flag("replace")
    effective = _moment("effectiveFrom")
    counts = roster.import_members(
        runtime_of(current_app),
        room_name,
        parse_csv(text),
        replace_all=replace_all,
        effective=effective,
        actor=api_actor(),
    )
    answer = RosterImported(
        added=counts.added, updated=counts.updated, removed=counts.removed, unchanged=counts.unchanged
    )
    return jsonify(answer.answer())


def _moment(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return metered_time(value)
    except PydanticCustomError:
        raise invalid_fields([{"field": name, "message": "not a readable time: use ISO-8601"}]) from None


@blueprint.errorhandler(RoomNotFound)
def _no_room(error: RoomNotFound) -> Response:
    return Problem(404, "Room not found", f"There is no room named {error}.").to_response()


@blueprint.errorhandler(roster.MemberNotFound)
def _not_on_roster(error: roster.MemberNotFound) -> Response:
    return Problem(404, "Not on the roster", f"{error} is not on the room's roster.").to_response()


@blueprint.errorhandler(roster.MemberExists)
def _on_roster(error: roster.MemberExists) -> Response:
    detail = f"{error} is on the room's roster already: change them with PATCH."
    return Problem(409, "Already on the roster", detail).to_response()


@blueprint.errorhandler(roster.RosterProblems)
def _refused(error: roster.RosterProblems) -> Response:
    return invalid_fields(error.errors).to_response()
