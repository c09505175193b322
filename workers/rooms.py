"""Room management: Metered rooms whose four webhooks point at Rollcall, mirrored in the rooms table."""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from workers.metered import MeteredClient, MeteredError, MeteredNotFound, MeteredTimeout, MeteredUnavailable
from workers.models import Room
from workers.models.base import utcnow
from workers.room_options import (
    WEBHOOK_FIELDS,
    CreateRoomRequest,
    UpdateRoomRequest,
    check_combinations,
    split_request,
    trusts_participant_emails,
)
from workers.room_tokens import new_token, replace_token, token_hash
from workers.runtime.settings import Settings
from workers.timefmt import iso_ms

# The webhook event in Rollcall's URL, and the Metered room field that registers it.
EVENT_FIELDS = {
    "participant-joined": "meetingJoinWebhook",
    "participant-left": "meetingLeftWebhook",
    "meeting-started": "meetingStartedWebhook",
    "meeting-ended": "meetingEndedWebhook",
}
ROLLCALL_COLUMNS = {
    "organizerEmail": "organizer_email",
    "notifyParticipants": "notify_participants",
    "minAttendancePercent": "min_attendance_percent",
}
# Rollcall-only fields without a column: kept in the room's options, which never go back to Metered.
ROLLCALL_OPTIONS = ("trustParticipantEmails",)

log = logging.getLogger(__name__)


class RoomNotFound(LookupError):
    """Rollcall has no room of that name."""


class RoomNameTaken(Exception):
    """A room of that name exists already, here or at Metered."""


class RoomArchived(Exception):
    """The room is archived and can no longer be changed."""


def webhook_urls(public_base_url: str, token: str) -> dict[str, str]:
    """Return the four webhook URLs for `token`, keyed by Metered's field names."""
    base = public_base_url.rstrip("/")
    return {field: f"{base}/hooks/metered/{token}/{event}" for event, field in EVENT_FIELDS.items()}


def create_room(
    Session: sessionmaker[Session], metered: MeteredClient, settings: Settings, request: CreateRoomRequest
) -> tuple[Room, dict[str, str]]:
    """Create the room at Metered with webhooks pointing here, store it, and return it with its URLs."""
    sent, rollcall = split_request(request)
    name = sent.get("roomName")
    if name and _find(Session, name) is not None:
        raise RoomNameTaken(name)
    token = new_token()
    urls = webhook_urls(settings.public_base_url, token)
    created = _create_at_metered(metered, {**sent, **urls})
    if not isinstance(created.get("roomName"), str):
        raise MeteredError(200, "Metered's answer names no room")
    options = {key: value for key, value in sent.items() if key != "roomName"}
    room = Room(
        room_name=created["roomName"],
        metered_room_id=created.get("_id"),
        webhook_token_hash=token_hash(token),
        options=options,
        metered_room=_stored(created),
        notify_participants=False,
    )
    _set_rollcall_fields(room, rollcall)
    try:
        with Session.begin() as session:
            session.add(room)
    except IntegrityError:
        raise RoomNameTaken(room.room_name) from None
    return room, urls


def list_rooms(
    Session: sessionmaker[Session], *, limit: int, after: int | None = None, include_archived: bool = False
) -> list[Room]:
    """Return up to `limit` rooms with an id above `after`, oldest first."""
    query = select(Room).order_by(Room.id).limit(limit)
    if after is not None:
        query = query.where(Room.id > after)
    if not include_archived:
        query = query.where(Room.archived_at.is_(None))
    with Session() as session:
        return list(session.scalars(query))


def get_room(Session: sessionmaker[Session], room_name: str) -> Room:
    """Return the room called `room_name`, or raise RoomNotFound."""
    room = _find(Session, room_name)
    if room is None:
        raise RoomNotFound(room_name)
    return room


def update_room(
    Session: sessionmaker[Session], metered: MeteredClient, room_name: str, request: UpdateRoomRequest
) -> Room:
    """Apply a PATCH: Metered's fields through Metered's update API, then the local row."""
    room = _active(Session, room_name)
    changes, rollcall = split_request(request)
    # The cross-field rules hold for the room as it will be, not for the PATCH body alone.
    check_combinations({**room.options, **changes})
    answer = metered.update_room(room_name, changes) if changes else None
    with Session.begin() as session:
        room = _load(session, room_name)
        room.options = {**room.options, **changes}
        # Metered's update answer is not documented: keep it if it is a room, else apply the changes.
        fresh = answer if answer and "_id" in answer else {**room.metered_room, **changes}
        room.metered_room = _stored(fresh)
        _set_rollcall_fields(room, rollcall)
    return room


def archive_room(Session: sessionmaker[Session], metered: MeteredClient, room_name: str) -> Room:
    """Archive the room at Metered and mark it archived here; its attendance history stays."""
    room = get_room(Session, room_name)
    if room.archived_at is not None:
        return room
    # Gone at Metered already: marking it here is all that is left to do.
    with suppress(MeteredNotFound):
        metered.delete_room(room_name)
    with Session.begin() as session:
        room = _load(session, room_name)
        room.archived_at = utcnow()
        room.metered_room = {**room.metered_room, "archived": True}
    return room


@dataclass(frozen=True)
class Rotation:
    """A room's new webhook token: its URLs, and whether Metered now calls them."""

    room: Room
    webhook_urls: dict[str, str]
    metered_updated: bool


def rotate_token(
    Session: sessionmaker[Session],
    metered: MeteredClient,
    settings: Settings,
    room_name: str,
    overlap_seconds: int | None = None,
) -> Rotation:
    """Give the room a new webhook token, register its URLs at Metered, and keep the old one a while.

    The old token stays valid for `overlap_seconds` (TOKEN_OVERLAP_SECONDS unless given; 0 revokes it now).
    """
    room = get_room(Session, room_name)
    token = new_token()
    urls = webhook_urls(settings.public_base_url, token)
    metered_updated = _register_urls(metered, room, urls)
    overlap = settings.token_overlap_seconds if overlap_seconds is None else overlap_seconds
    with Session.begin() as session:
        room = _load(session, room_name)
        replace_token(room, token, overlap, utcnow())
    return Rotation(room, urls, metered_updated)


def _register_urls(metered: MeteredClient, room: Room, urls: dict[str, str]) -> bool:
    if room.archived_at is None:
        # Metered first: if it refuses, the old token stays the only one and nothing is lost.
        metered.update_room(room.room_name, urls)
        return True
    try:
        metered.update_room(room.room_name, urls)
    except MeteredError as error:
        # Metered may refuse to change an archived room; revoking a leaked token must not depend on it.
        log.warning("room %s is archived and Metered kept its old webhook URLs (%s)", room.room_name, error)
        return False
    return True


def room_view(room: Room, webhook_urls: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the API's room: Metered's fields, Rollcall's own, and the webhook URLs when known."""
    view: dict[str, Any] = {
        **room.metered_room,
        "roomName": room.room_name,
        "organizerEmail": room.organizer_email,
        "notifyParticipants": room.notify_participants,
        "minAttendancePercent": room.min_attendance_percent,
        "trustParticipantEmails": trusts_participant_emails(room.options),
        "archivedAt": iso_ms(room.archived_at) if room.archived_at else None,
    }
    if webhook_urls is not None:
        view["webhookUrls"] = dict(webhook_urls)
    return view


def rotation_view(rotation: Rotation) -> dict[str, Any]:
    """Return the answer to a rotation: the room, its new webhook URLs, and how the old token fares."""
    expires_at = rotation.room.previous_token_expires_at
    return {
        **room_view(rotation.room, rotation.webhook_urls),
        "meteredUpdated": rotation.metered_updated,
        "previousTokenExpiresAt": iso_ms(expires_at) if expires_at else None,
    }


def _create_at_metered(metered: MeteredClient, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return metered.create_room(payload)
    except (MeteredTimeout, MeteredUnavailable):
        raise
    except MeteredError:
        # Metered's status for a taken name is not documented: ask it before calling this a conflict.
        if "roomName" in payload and _exists_at_metered(metered, payload["roomName"]):
            raise RoomNameTaken(payload["roomName"]) from None
        raise


def _exists_at_metered(metered: MeteredClient, room_name: str) -> bool:
    try:
        metered.get_room(room_name)
    except MeteredError:
        return False
    return True


def _stored(metered_room: dict[str, Any]) -> dict[str, Any]:
    # Metered echoes the webhook URLs, which carry the token: a database dump must not reveal them.
    return {key: value for key, value in metered_room.items() if key not in WEBHOOK_FIELDS}


def _set_rollcall_fields(room: Room, rollcall: dict[str, Any]) -> None:
    for field, value in rollcall.items():
        if field in ROLLCALL_OPTIONS:
            room.options = {**room.options, field: value}
        else:
            setattr(room, ROLLCALL_COLUMNS[field], value)


def _find(Session: sessionmaker[Session], room_name: str) -> Room | None:
    with Session() as session:
        return session.scalars(select(Room).where(Room.room_name == room_name)).first()


def _load(session: Session, room_name: str) -> Room:
    room = session.scalars(select(Room).where(Room.room_name == room_name)).first()
    if room is None:
        raise RoomNotFound(room_name)
    return room


def _active(Session: sessionmaker[Session], room_name: str) -> Room:
    room = get_room(Session, room_name)
    if room.archived_at is not None:
        raise RoomArchived(room_name)
    return room
