"""The report API across a room's sessions: the series matrix and billable time, as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import Problem, invalid_fields
from webhooks.reports import wants_csv
from workers.models import Room
from workers.reports import attachment_disposition
from workers.series import billing_csv, billing_report, series_csv, series_report

blueprint = Blueprint("series", __name__)


@blueprint.get("/api/rooms/<room_name>/series")
@require_token
def room_series(room_name: str) -> Response | dict[str, Any]:
    """Show the person-by-session matrix of a room's sessions in [from, to), with rates and absence runs."""
    began_from, began_to = requested_range()
    with runtime_of(current_app).Db() as db:
        report = series_report(db, room_or_404(db, room_name), began_from, began_to)
    if wants_csv():
        return _download(series_csv(report), "series", room_name, began_from, began_to)
    return report.answer()


@blueprint.get("/api/rooms/<room_name>/billing")
@require_token
def room_billing(room_name: str) -> Response | dict[str, Any]:
    """Show each person's attended time in a room's sessions in [from, to), rounded up to the increment."""
    began_from, began_to = requested_range()
    with runtime_of(current_app).Db() as db:
        report = billing_report(db, room_or_404(db, room_name), began_from, began_to)
    if wants_csv():
        return _download(billing_csv(report), "billing", room_name, began_from, began_to)
    return report.answer()


def room_or_404(db: Session, room_name: str) -> Room:
    """Return the room named `room_name`; 404 problem if there is none."""
    room = db.scalar(select(Room).where(Room.room_name == room_name))
    if room is None:
        raise Problem(404, "Not Found", f"no room {room_name!r}")
    return room


def requested_range() -> tuple[datetime, datetime]:
    """Read `from` and `to` (ISO dates or times, UTC unless they say otherwise); 422 naming each bad one."""
    errors: list[dict[str, str]] = []
    began_from, began_to = (_moment(name, errors) for name in ("from", "to"))
    if began_from is not None and began_to is not None and began_to <= began_from:
        errors.append({"field": "to", "message": "must be after from"})
    if errors or began_from is None or began_to is None:
        raise invalid_fields(errors)
    return began_from, began_to


def _moment(name: str, errors: list[dict[str, str]]) -> datetime | None:
    text = request.args.get(name)
    if not text:
        errors.append({"field": name, "message": "is required: an ISO-8601 date or time"})
        return None
    try:
        # A date alone is that day's midnight; a time without an offset is UTC.
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves it out of years 1 to 9999
        errors.append({"field": name, "message": "not a readable date or time: use ISO-8601"})
        return None


def _download(text: str, kind: str, room_name: str, began_from: datetime, began_to: datetime) -> Response:
    name = f"{kind}-{room_name}-{_day(began_from)}-{_day(began_to)}.csv"
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": attachment_disposition(name)})


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d" if moment.time() == time() else "%Y-%m-%dT%H%M%SZ")
