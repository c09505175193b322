"""The report API across a room's sessions: the series matrix and billable time, as JSON or CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, request
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.reports import wants_csv
from workers.deliveries.parsing import metered_time
from workers.models import Room
from workers.reports import attachment_disposition
from workers.rooms import RoomNotFound, load_room
from workers.series import billing_csv, billing_report, series_csv, series_report
from workers.timefmt import UTC_ZONE, on_clock, zone_of
from workers.wire import BillingReport, SeriesReport

blueprint = Blueprint("series", __name__)
Report = TypeVar("Report", SeriesReport, BillingReport)


@blueprint.get("/api/rooms/<room_name>/series")
@require_token
def room_series(room_name: str) -> Response | dict[str, Any]:
    """Show the person-by-session matrix of a room's sessions in [from, to), with rates and absence runs."""
    return _range_report(room_name, "series", series_report, series_csv)


@blueprint.get("/api/rooms/<room_name>/billing")
@require_token
def room_billing(room_name: str) -> Response | dict[str, Any]:
    """Show each person's attended time in a room's sessions in [from, to), rounded up to the increment."""
    return _range_report(room_name, "billing", billing_report, billing_csv)


def _range_report(
    room_name: str,
    kind: str,
    build: Callable[[Session, Room, datetime, datetime], Report],
    render_csv: Callable[[Report, ZoneInfo], str],
) -> Response | dict[str, Any]:
    # Both reports read a range of the room's sessions on its clock and answer JSON or a CSV download.
    with runtime_of(current_app).Db() as db:
        room = load_room(db, room_name)
        zone = zone_of(room.options)
        began_from, began_to = requested_range(zone)
        report = build(db, room, began_from, began_to)
    if wants_csv():
        return _download(render_csv(report, zone), kind, room_name, (began_from, began_to), zone)
    return report.answer()


def requested_range(clock: ZoneInfo) -> tuple[datetime, datetime]:
    """Read `from` and `to` (ISO dates or times; without an offset, on `clock`); 422 naming each bad one."""
    errors: list[dict[str, str]] = []
    began_from, began_to = (_moment(name, clock, errors) for name in ("from", "to"))
    if began_from is not None and began_to is not None and began_to <= began_from:
        errors.append({"field": "to", "message": "must be after from"})
    if errors or began_from is None or began_to is None:
        raise invalid_fields(errors)
    return began_from, began_to


def _moment(name: str, clock: ZoneInfo, errors: list[dict[str, str]]) -> datetime | None:
    text = request.args.get(name)
    if not text:
        errors.append({"field": name, "message": "is required: an ISO-8601 date or time"})
        return None
    try:
        return metered_time(text, clock)
    except PydanticCustomError as error:
        errors.append({"field": name, "message": error.message()})
        return None


def _download(
    text: str, kind: str, room_name: str, began: tuple[datetime, datetime], zone: ZoneInfo
) -> Response:
    name = f"{kind}-{room_name}-{_day(began[0], zone)}-{_day(began[1], zone)}.csv"
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": attachment_disposition(name)})


def _day(moment: datetime, zone: ZoneInfo) -> str:
    # The organizer's dates, as they asked for them: a range of days is named by its days.
    local = on_clock(moment, zone)
    if local.time() == time():
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%dT%H%M%S") + ("Z" if local.tzinfo == UTC_ZONE else "")


@blueprint.errorhandler(RoomNotFound)
def _no_room(error: RoomNotFound) -> Response:
    return Problem(404, "Room not found", f"There is no room named {error}.").to_response()
