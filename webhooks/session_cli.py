"""`flask sessions rebuild`: recompute sessions from their stored raw deliveries, with progress."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import Select, select

from webhooks import runtime_of
from workers.locks import room_lock
from workers.models import MeetingSession, Room, SessionStatus
from workers.rebuild import rebuild as rebuild_session
from workers.session_jobs import REBUILD_LOCK_SECONDS, notify_amended

sessions = AppGroup("sessions", help="Meeting sessions.")


@sessions.command("rebuild")
@click.argument("meeting_session_id", required=False)
@click.option("--room", "room_name", help="Rebuild every session of this room.")
@click.option("--all", "everything", is_flag=True, help="Rebuild every session.")
def rebuild(meeting_session_id: str | None, room_name: str | None, everything: bool) -> None:
    """Recompute sessions from the stored deliveries; the result matches the first fold."""
    if sum((meeting_session_id is not None, room_name is not None, everything)) != 1:
        raise click.UsageError("give exactly one of MEETING_SESSION_ID, --room NAME or --all")
    runtime = runtime_of(current_app)
    with runtime.Session() as db:
        chosen = db.execute(_chosen(meeting_session_id, room_name))
        ids = [(session_id, room_id) for session_id, room_id in chosen]
    if not ids:
        raise click.ClickException("no matching meeting session")
    with click.progressbar(ids, label="rebuilding", show_pos=True) as bar:
        for session_id, room_id in bar:
            # The room's lock, as the worker's jobs hold it: no drain folds into a session being rewritten.
            with room_lock(runtime.redis, room_id, REBUILD_LOCK_SECONDS), runtime.Session.begin() as db:
                meeting = db.get_one(MeetingSession, session_id)
                change = rebuild_session(db, meeting)
                amended = meeting.status == SessionStatus.FINAL and change.changed
            if amended:
                notify_amended(runtime.queue(), {session_id})
    click.echo(f"rebuilt {len(ids)} session(s)")


def _chosen(meeting_session_id: str | None, room_name: str | None) -> Select[int, int]:
    query = select(MeetingSession.id, MeetingSession.room_id).order_by(MeetingSession.id)
    if meeting_session_id is not None:
        return query.where(MeetingSession.meeting_session_id == meeting_session_id)
    if room_name is not None:
        return query.join(Room, Room.id == MeetingSession.room_id).where(Room.room_name == room_name)
    return query


def register(app: Flask) -> None:
    """Attach the `sessions` group."""
    app.cli.add_command(sessions)
