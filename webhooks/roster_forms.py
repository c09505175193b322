"""The room page's roster forms: add a member, remove one, import a CSV (merge or replace).

Each calls the same workers.roster function as the API, as the API's actor, after the CSRF check. A change
made answers 303 back to the room page; a refused one answers the page again, naming each problem, with
the status the API would have answered, and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, current_app, redirect, request, url_for
from pydantic import BaseModel, ValidationError, WithJsonSchema
from werkzeug.wrappers import Response

from webhooks import runtime_of
from webhooks.auth import require_basic
from webhooks.csrf import check_form
from webhooks.errors import Problem
from webhooks.pages import render_room_page
from workers import roster
from workers.audit import API_ACTOR
from workers.deliveries.parsing import field_errors
from workers.rooms import RoomNotFound
from workers.roster import MemberRequest, member_of
from workers.roster_csv import parse_csv

blueprint = Blueprint("roster_forms", __name__)

MEMBER_FIELDS = ("externalUserId", "email", "name", "role", "group", "csrfToken")
IMPORT_MODES = ("merge", "replace")
Refusal = tuple[str, int]


class MemberForm(MemberRequest):
    """The add form's fields: a member as the API takes one, and the form's CSRF token."""

    csrfToken: str


class RemoveForm(BaseModel):
    """The remove button's fields: whom to take off, and the form's CSRF token."""

    csrfToken: str
    participantKey: str


class ImportForm(BaseModel):
    """The upload form's fields (multipart/form-data): the CSV, merge or replace, and the CSRF token."""

    csrfToken: str
    mode: Literal["merge", "replace"]
    file: Annotated[bytes, WithJsonSchema({"type": "string", "format": "binary"})]


@blueprint.post("/rooms/<room_name>/roster")
@require_basic
def add_member(room_name: str) -> Response | Refusal:
    """Put the person the form describes on the room's roster, from now."""
    check_form(f"roster-add:{room_name}")
    # An empty box is a field not given, as an empty CSV cell is.
    given = {name: value for name in MEMBER_FIELDS if (value := request.form.get(name, "").strip())}
    try:
        member = member_of(MemberForm.model_validate(given))
        roster.add(runtime_of(current_app), room_name, member, None, API_ACTOR)
    except ValidationError as error:
        return _refused(room_name, field_errors(error), 422)
    except roster.RosterProblems as error:
        return _refused(room_name, error.errors, 422)
    except roster.MemberExists as error:
        return _refused(room_name, [{"field": "member", "message": f"{error} is on the roster already"}], 409)
    return _back_to_room(room_name)


@blueprint.post("/rooms/<room_name>/roster/remove")
@require_basic
def remove_member(room_name: str) -> Response | Refusal:
    """Take the person of the form's participantKey off the room's roster, from now."""
    check_form(f"roster-remove:{room_name}")
    key = request.form.get("participantKey", "")
    try:
        roster.remove(runtime_of(current_app), room_name, key, None, API_ACTOR)
    except roster.RosterProblems as error:
        return _refused(room_name, error.errors, 422)
    except roster.MemberNotFound:
        return _refused(
            room_name, [{"field": "participantKey", "message": f"{key} is not on the roster"}], 404
        )
    return _back_to_room(room_name)


@blueprint.post("/rooms/<room_name>/roster/import")
@require_basic
def import_members(room_name: str) -> Response | Refusal:
    """Import the uploaded roster CSV: merge it into the roster, or replace the roster with it."""
    check_form(f"roster-import:{room_name}")
    problems = []
    mode = request.form.get("mode", "")
    if mode not in IMPORT_MODES:
        problems.append({"field": "mode", "message": f"must be one of {', '.join(IMPORT_MODES)}"})
    text = _uploaded_text(problems)
    if problems:
        return _refused(room_name, problems, 422)
    try:
        roster.import_members(
            runtime_of(current_app),
            room_name,
            parse_csv(text),
            replace_all=mode == "replace",
            effective=None,
            actor=API_ACTOR,
        )
    except roster.RosterProblems as error:
        return _refused(room_name, error.errors, 422)
    return _back_to_room(room_name)


def _uploaded_text(problems: list[dict[str, str]]) -> str:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        problems.append({"field": "file", "message": "is required: a roster CSV"})
        return ""
    try:
        data: bytes = upload.read()
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append({"field": "file", "message": "is not UTF-8 text"})
        return ""


def _refused(room_name: str, problems: list[dict[str, str]], status: int) -> Refusal:
    return render_room_page(room_name, problems), status


def _back_to_room(room_name: str) -> Response:
    # 303: the browser loads the page with a GET, so reloading it does not post the form again.
    return redirect(url_for("pages.room_page", room_name=room_name), 303)


@blueprint.errorhandler(RoomNotFound)
def _no_room(error: RoomNotFound) -> Response:
    return Problem(404, "Room not found", f"There is no room named {error}.").to_response()
