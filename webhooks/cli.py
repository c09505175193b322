"""Flask commands: `flask --app wsgi db|worker|rooms|roster|events|sessions|people|audit|emulator|demo`.

Each group is a thin shell over workers/ (and over devtools/ for the emulator and the demo, imported only
when their command runs): parse the options, call one function, print the outcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import NoneType, UnionType
from typing import IO, Annotated, Any, Literal, Union, get_args, get_origin

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from werkzeug.serving import run_simple

from webhooks import runtime_of
from webhooks.audit_export import KINDS, ExportRange, export_lines
from webhooks.errors import Problem
from webhooks.seals import kept_seals
from workers import audit, erasure, jobs, overrides, rooms, roster, verification, wire
from workers.audit import cli_actor
from workers.bulk_replay import Cursor, ReplayFilter, replay_all
from workers.deliveries.parsing import field_errors, metered_time
from workers.folding import rebuild as rebuild_session
from workers.jobs import notify_amended
from workers.locks import room_lock
from workers.metered import MeteredClient, MeteredError, MeteredTimeout
from workers.models import DeliveryStatus, MeetingSession, Room, Seal, SessionStatus
from workers.models.base import utcnow
from workers.overrides import OverrideRequest
from workers.rooms import ROLLCALL_FIELDS, CreateRoomRequest
from workers.roster import MemberRequest, UpdateMemberRequest, member_of
from workers.roster_csv import parse_csv
from workers.runtime import migrate
from workers.statuses import OVERRIDABLE
from workers.timefmt import iso_ms

DEFAULT_SECRET = "emulator-secret"  # noqa: S105 - the emulator's dev-only default, printed so people can use it

db_group = AppGroup("db", help="Database schema.")


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the database to the latest schema."""
    runtime = runtime_of(current_app)
    migrate.upgrade(runtime.engine.url.render_as_string(hide_password=False), revision)
    click.echo(f"database at {revision}")


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def worker(options: tuple[str, ...]) -> None:
    """Run the RQ worker, as `python -m workers` does (options: --embedded, --burst)."""
    from workers.__main__ import main  # imported here: only this command needs the worker's set-up

    main(list(options))


rooms_group = AppGroup("rooms", help="Metered rooms whose webhooks point at Rollcall.")


def flag_name(field: str) -> str:
    """Return the command-line flag of a Create Room field: enableRTMPOut -> --enable-rtmp-out."""
    return "--" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", field).lower()


def _room_option(field: str, annotation: Any, description: str) -> click.Option:
    kind = next(k for k in get_args(annotation) if k is not NoneType) if _is_union(annotation) else annotation
    kind = get_args(kind)[0] if get_origin(kind) is Annotated else kind
    flag = flag_name(field)
    if kind is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", field], default=None, help=description)
    if get_origin(kind) is Literal:
        return click.Option([flag, field], type=click.Choice(get_args(kind)), help=description)
    return click.Option([flag, field], type=kind if kind in (int, float) else str, help=description)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def _with_room_options(command: click.Command) -> click.Command:
    # One flag per Create Room field, generated so the CLI can never miss one the model accepts.
    for field, info in CreateRoomRequest.model_fields.items():
        where = "Rollcall-only" if field in ROLLCALL_FIELDS else "Metered's Create Room field"
        command.params.append(_room_option(field, info.annotation, f"{where} {field}."))
    return command


@contextmanager
def _explained_failures() -> Iterator[None]:
    """Turn a refused request into a one-screen message and a non-zero exit."""
    try:
        yield
    except ValidationError as error:
        lines = [
            f"  {'.'.join(map(str, item['loc'])) or 'options'}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise click.ClickException("the room options are not valid:\n" + "\n".join(lines)) from None
    except rooms.RoomNotFound as error:
        raise click.ClickException(f"there is no room named {error}") from None
    except rooms.RoomNameTaken as error:
        raise click.ClickException(f"a room named {error} exists already") from None
    except rooms.RoomArchived as error:
        raise click.ClickException(f"the room {error} is archived") from None
    except MeteredTimeout:
        raise click.ClickException("Metered did not answer in time; try again") from None
    except MeteredError as error:
        raise click.ClickException(f"Metered refused: {error.message}") from None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


@rooms_group.command("create")
@click.option(
    "--json",
    "json_file",
    type=click.File("r"),
    help="Read options from a JSON file ('-': stdin); flags override it.",
)
def create_room(json_file: IO[str] | None, **flags: Any) -> None:
    """Create a Metered room whose webhooks point at Rollcall, and print it with its webhook URLs."""
    try:
        options = json.load(json_file) if json_file else {}
    except json.JSONDecodeError as error:
        raise click.ClickException(f"the --json file is not JSON: {error}") from None
    if not isinstance(options, dict):
        raise click.ClickException("the --json file must hold a JSON object")
    options.update({field: value for field, value in flags.items() if value is not None})
    runtime = runtime_of(current_app)
    with _explained_failures():
        request = CreateRoomRequest.model_validate(options)
        with MeteredClient.from_settings(runtime.settings) as metered:
            room, urls = rooms.create_room(runtime.Db, metered, runtime.settings, request, cli_actor())
    _echo_json(wire.room_out(room, urls).answer())


_with_room_options(create_room)


@rooms_group.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived rooms.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_rooms(include_archived: bool, as_json: bool) -> None:
    """List the rooms, oldest first."""
    found = list(_every_room(include_archived))
    if as_json:
        _echo_json([wire.room_out(room).answer() for room in found])
        return
    if not found:
        click.echo("no rooms yet: create one with `flask --app wsgi rooms create`", err=True)
    for room in found:
        state = "archived" if room.archived_at else str(room.metered_room.get("privacy", ""))
        click.echo(f"{room.room_name:<32} {room.metered_room_id or '-':<26} {state}")


def _every_room(include_archived: bool, page_size: int = 200) -> Iterator[Room]:
    after = None
    while page := rooms.list_rooms(
        runtime_of(current_app).Db, limit=page_size, after=after, include_archived=include_archived
    ):
        yield from page
        after = page[-1].id


@rooms_group.command("show")
@click.argument("name")
def show_room(name: str) -> None:
    """Print one room as JSON."""
    with _explained_failures():
        _echo_json(wire.room_out(rooms.get_room(runtime_of(current_app).Db, name)).answer())


@rooms_group.command("delete")
@click.argument("name")
def delete_room(name: str) -> None:
    """Archive a room at Metered; its attendance history stays."""
    _with_metered(lambda metered: rooms.archive_room(runtime_of(current_app).Db, metered, name, cli_actor()))
    click.echo(f"archived room {name}")


@rooms_group.command("rotate-token")
@click.argument("name")
@click.option(
    "--revoke-old",
    is_flag=True,
    help="The old token stops working at once (a leak), instead of after TOKEN_OVERLAP_SECONDS.",
)
def rotate_token(name: str, revoke_old: bool) -> None:
    """Give a room, archived or not, a new webhook token, register it at Metered, and print its URLs."""
    runtime = runtime_of(current_app)
    rotation: rooms.Rotation = _with_metered(
        lambda metered: rooms.rotate_token(
            runtime.Db, metered, runtime.settings, name, cli_actor(), 0 if revoke_old else None
        )
    )
    _echo_json(rotation.webhook_urls)
    if not rotation.metered_updated:
        click.echo("the room is archived and Metered kept its old webhook URLs", err=True)
    expires_at = rotation.room.previous_token_expires_at
    old_token = f"works until {iso_ms(expires_at)}" if expires_at else "no longer works"
    click.echo(f"the old token {old_token}", err=True)


def _with_metered(action: Callable[[MeteredClient], Any]) -> Any:
    with _explained_failures(), MeteredClient.from_settings(runtime_of(current_app).settings) as metered:
        return action(metered)


roster_group = AppGroup("roster", help="Who a room expects: its roster.")


@contextmanager
def _roster_refusals() -> Iterator[None]:
    """Turn a refused roster change into a message naming each problem, and a non-zero exit."""
    try:
        yield
    except ValidationError as error:
        problems = field_errors(error)
        raise click.ClickException("\n".join(f"{p['field']}: {p['message']}" for p in problems)) from None
    except roster.RosterProblems as error:
        lines = [f"  {problem['field']}: {problem['message']}" for problem in error.errors]
        raise click.ClickException("nothing was changed:\n" + "\n".join(lines)) from None
    except rooms.RoomNotFound as error:
        raise click.ClickException(f"there is no room named {error}") from None
    except roster.MemberExists as error:
        raise click.ClickException(f"{error} is on the roster already") from None
    except roster.MemberNotFound as error:
        raise click.ClickException(f"{error} is not on the roster") from None


def _moment(_context: click.Context, _parameter: click.Parameter, value: str | None) -> datetime | None:
    # Read as the API reads times, so a date means the same at the command line as in a request.
    try:
        return None if value is None else metered_time(value)
    except PydanticCustomError:
        raise click.BadParameter("not a readable time: use ISO-8601, e.g. 2026-09-01T08:00:00Z") from None


_effective_from = click.option(
    "--effective-from",
    callback=_moment,
    help="When the change takes effect: ISO-8601, UTC unless an offset is given (default now).",
)


@roster_group.command("list")
@click.argument("room_name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_roster(room_name: str, as_json: bool) -> None:
    """List the room's roster as it is now, by participant key."""
    with _roster_refusals():
        rows = roster.list_members(runtime_of(current_app), room_name, utcnow())
    if as_json:
        _echo_json([wire.roster_member_out(row).answer() for row in rows])
        return
    if not rows:
        click.echo(f"the roster of {room_name} is empty", err=True)
    for row in rows:
        click.echo(f"{row.participant_key:<40} {row.role:<9} {row.name or '-':<30} {row.group or '-'}")


@roster_group.command("add")
@click.argument("room_name")
@click.option("--external-user-id", help="The id your system gives this person (Metered's externalUserId).")
@click.option("--email", help="The person's email address (matched case-insensitively).")
@click.option("--name")
@click.option("--role", type=click.Choice(["attendee", "host"]), default="attendee", show_default=True)
@click.option("--group")
@_effective_from
def add_to_roster(
    room_name: str,
    external_user_id: str | None,
    email: str | None,
    name: str | None,
    role: str,
    group: str | None,
    effective_from: datetime | None,
) -> None:
    """Put a person on the room's roster."""
    given = {"externalUserId": external_user_id, "email": email, "name": name, "role": role, "group": group}
    with _roster_refusals():
        member = member_of(MemberRequest.model_validate({k: v for k, v in given.items() if v is not None}))
        row = roster.add(runtime_of(current_app), room_name, member, effective_from, cli_actor())
    click.echo(f"added {row.participant_key} to {room_name}")


@roster_group.command("update")
@click.argument("room_name")
@click.argument("participant_key")
@click.option("--email", help="A new email address; an empty one clears it.")
@click.option("--name", help="A new name; an empty one clears it.")
@click.option("--role", type=click.Choice(["attendee", "host"]))
@click.option("--group", help="A new group; an empty one clears it.")
@_effective_from
def update_roster_member(
    room_name: str,
    participant_key: str,
    email: str | None,
    name: str | None,
    role: str | None,
    group: str | None,
    effective_from: datetime | None,
) -> None:
    """Change a roster member's email, name, role or group (the options given), as PATCH does."""
    given = {"email": email, "name": name, "role": role, "group": group}
    # An empty value clears the field, as a null does in the API's PATCH.
    changes = {field: value or None for field, value in given.items() if value is not None}
    with _roster_refusals():
        request = UpdateMemberRequest.model_validate(changes)
        request = request.model_copy(update={"effectiveFrom": effective_from})
        row = roster.update(runtime_of(current_app), room_name, participant_key, request, cli_actor())
    click.echo(f"updated {row.participant_key} in {room_name}")


@roster_group.command("remove")
@click.argument("room_name")
@click.argument("participant_key")
@_effective_from
def remove_from_roster(room_name: str, participant_key: str, effective_from: datetime | None) -> None:
    """Take a person (by participant key, e.g. ext:u-42 or email:ann@example.com) off the room's roster."""
    with _roster_refusals():
        roster.remove(runtime_of(current_app), room_name, participant_key, effective_from, cli_actor())
    click.echo(f"removed {participant_key} from {room_name}")


@roster_group.command("import")
@click.argument("room_name")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@click.option("--replace", is_flag=True, help="Remove the members the file does not list.")
@_effective_from
def import_roster(room_name: str, csv_file: IO[str], replace: bool, effective_from: datetime | None) -> None:
    """Add or update the members a CSV lists (externalUserId,email,name,role,group), or none if one is bad."""
    try:
        text = csv_file.read()
    except UnicodeDecodeError:
        raise click.ClickException("the file is not UTF-8 text") from None
    with _roster_refusals():
        counts = roster.import_members(
            runtime_of(current_app),
            room_name,
            parse_csv(text),
            replace_all=replace,
            effective=effective_from,
            actor=cli_actor(),
        )
    done = f"added {counts.added}, updated {counts.updated}, removed {counts.removed}"
    click.echo(f"{done}, unchanged {counts.unchanged}")


events_group = AppGroup("events", help="Stored webhook deliveries.")


@events_group.command("replay")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--room", help="Replay every delivery of this room (with --status, --since: those matching).")
@click.option("--status", type=click.Choice([str(status) for status in DeliveryStatus]))
@click.option("--since", callback=_moment, help="Received at or after: ISO-8601, UTC by default.")
def replay(
    delivery_ids: tuple[int, ...], room: str | None, status: str | None, since: datetime | None
) -> None:
    """Fold deliveries again: those given by id, or every one the filters match (`--status failed`)."""
    runtime = runtime_of(current_app)
    filtering = any(value is not None for value in (room, status, since))
    if bool(delivery_ids) == filtering:
        raise click.UsageError("give delivery ids, or filters (--room, --status, --since), not both")
    if filtering:
        wanted = ReplayFilter.model_validate({"room": room, "status": status, "since": since})
        with click.progressbar(length=1, label="replaying", show_pos=True) as bar:

            def progress(cursor: Cursor) -> None:
                bar.length = max(cursor.matched, 1)
                bar.update(cursor.replayed - bar.pos)

            count = replay_all(runtime, wanted, cli_actor(), progress=progress)
        click.echo(f"replayed {count} deliver{'y' if count == 1 else 'ies'}")
        return
    missing = []
    for delivery_id in delivery_ids:
        status = jobs.replay(runtime, delivery_id, cli_actor())
        if status is None:
            missing.append(delivery_id)
        else:
            click.echo(f"delivery {delivery_id}: {status}")
    if missing:
        raise click.ClickException(f"no such delivery: {', '.join(map(str, missing))}")


@events_group.command("relay")
def relay() -> None:
    """Signal a worker for every room with deliveries never processed, however recent."""
    count = jobs.relay_rooms(runtime_of(current_app), None)
    click.echo(f"signalled {count} room(s)")


sessions_group = AppGroup("sessions", help="Meeting sessions.")


@sessions_group.command("rebuild")
@click.argument("meeting_session_id", required=False)
@click.option("--room", "room_name", help="Rebuild every session of this room.")
@click.option("--all", "everything", is_flag=True, help="Rebuild every session.")
def rebuild(meeting_session_id: str | None, room_name: str | None, everything: bool) -> None:
    """Recompute sessions from the stored deliveries; the result matches the first fold."""
    if sum((meeting_session_id is not None, room_name is not None, everything)) != 1:
        raise click.UsageError("give exactly one of MEETING_SESSION_ID, --room NAME or --all")
    runtime = runtime_of(current_app)
    with runtime.Db() as db:
        chosen = db.execute(_chosen(meeting_session_id, room_name))
        ids = [(session_id, room_id) for session_id, room_id in chosen]
    if not ids:
        raise click.ClickException("no matching meeting session")
    with click.progressbar(ids, label="rebuilding", show_pos=True) as bar:
        for session_id, room_id in bar:
            # The room's lock, as the worker's jobs hold it: no drain folds into a session being rewritten.
            with room_lock(runtime.redis, room_id), runtime.Db.begin() as db:
                meeting = db.get_one(MeetingSession, session_id)
                change = rebuild_session(db, meeting)
                audit.record_rebuild(db, cli_actor(), meeting, change)
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


@sessions_group.command("override")
@click.argument("meeting_session_id")
@click.argument("participant_key")
@click.argument("status", required=False, type=click.Choice([str(status) for status in OVERRIDABLE]))
@click.option("--reason", help="Why, for the session's history (up to 1,000 characters).")
@click.option("--clear", is_flag=True, help="Remove the override: the computed status stands again.")
def override(
    meeting_session_id: str, participant_key: str, status: str | None, reason: str | None, clear: bool
) -> None:
    """Set a person's status in a session by hand, or --clear it; recorded as your OS user."""
    wanted = _override_wanted(status, reason, clear)
    runtime = runtime_of(current_app)
    judged = None
    with runtime.Db.begin() as db:
        query = select(MeetingSession).where(MeetingSession.meeting_session_id == meeting_session_id)
        meeting = db.scalar(query)
        if meeting is None:
            raise click.ClickException(f"no meeting session {meeting_session_id!r}")
        try:
            if wanted is None:
                amendment = overrides.clear_override(db, meeting, participant_key, cli_actor())
            else:
                judged, amendment = overrides.set_override(db, meeting, participant_key, wanted, cli_actor())
        except overrides.UnknownPerson:
            raise click.ClickException(f"{participant_key} neither attended nor was on the roster") from None
        except overrides.NoOverride:
            raise click.ClickException(f"{participant_key} has no override in this session") from None
    overrides.announce(runtime.queue(), amendment)
    if judged is None:
        click.echo(f"override of {participant_key} removed")
    else:
        _echo_json(judged.answer())


def _override_wanted(status: str | None, reason: str | None, clear: bool) -> OverrideRequest | None:
    if clear == (status is not None) or (clear and reason is not None):
        raise click.UsageError("give STATUS (and --reason), or --clear alone")
    if clear:
        return None
    try:
        return OverrideRequest.model_validate({"status": status, "reason": reason})
    except ValidationError as error:  # the status is a click.Choice already: what is left is the reason
        raise click.BadParameter(error.errors()[0]["msg"], param_hint="--reason") from None


# Retention, erasure and seals (issue 15): `people erase`, `audit verify`, `audit seals`.

people_group = AppGroup("people", help="The people who attended: erase one.")
audit_group = AppGroup("audit", help="The audit log: export it, verify its seals, export the seals.")


@people_group.command("erase")
@click.argument("participant_key")
def erase_person(participant_key: str) -> None:
    """Replace a person's name, email and externalUserId with a pseudonym everywhere; figures stay."""
    try:
        with runtime_of(current_app).Db.begin() as db:
            erased = erasure.erase_person(db, participant_key, cli_actor(), utcnow())
    except erasure.UnknownPerson:
        message = f"no attendance, participant session or roster row has {participant_key}"
        raise click.ClickException(message) from None
    _echo_json(wire.person_erased_out(erased).answer())


@audit_group.command("verify")
@click.option("--against", type=click.File(encoding="utf-8"), help="A copy `audit seals` printed, to check.")
def verify_seals(against: IO[str] | None) -> None:
    """Recompute every seal and name each record changed, added, removed or redacted; exit 1 if tampered."""
    try:
        kept = kept_seals(against.read()) if against is not None else []
    except Problem as problem:
        raise click.BadParameter(problem.detail, param_hint="--against") from None
    with runtime_of(current_app).Db() as db:
        checked = verification.verify(db, utcnow(), kept)
    for finding in wire.verification_out(checked).findings:
        what = "seal" if finding.id is None else f"{finding.kind} {finding.id}"
        redaction = f" by {finding.redaction}" if finding.redaction else ""
        click.echo(f"{finding.day} {what}: {finding.problem}{redaction}")
    click.echo(f"{checked.seals_checked} seal(s) checked: {'intact' if checked.intact else 'TAMPERED'}")
    if not checked.intact:
        raise SystemExit(1)


@audit_group.command("seals")
def export_seals() -> None:
    """Print every seal as one JSON object a line, oldest day first, for an auditor to keep elsewhere."""
    with runtime_of(current_app).Db() as db:
        for seal in db.scalars(select(Seal).order_by(Seal.day)):
            click.echo(wire.seal_out(seal).model_dump_json())


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option(
    "--secret",
    envvar="METERED_SECRET_KEY",
    default=None,
    help=f"Secret key to accept (default: METERED_SECRET_KEY, else {DEFAULT_SECRET!r}).",
)
@click.option("--app-id", default=None, help="Metered app id to put in room objects (default: random).")
def emulator_command(host: str, port: int, secret: str | None, app_id: str | None) -> None:
    """Serve an emulator of Metered's room API (and /_emulator/... to play meetings)."""
    from devtools.emulator import create_emulator  # devtools only when asked: the app never needs it

    click.echo(f"Metered emulator: METERED_API_URL=http://{host}:{port}/api/v1")
    # Never print a key that came from the environment; the built-in default is public anyway.
    click.echo("secret key: " + ("as given" if secret else f"{DEFAULT_SECRET} (METERED_SECRET_KEY)"))
    run_simple(host, port, create_emulator(secret or DEFAULT_SECRET, app_id), threaded=True)


@click.command("demo")
@click.option("--people", type=click.IntRange(10, 200), default=40, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Web port [default: a free one].")
@click.option("--keep-running", is_flag=True, help="Leave the web server and worker up until Ctrl-C.")
def demo_command(people: int, port: int, keep_running: bool) -> None:
    """Run the whole loop on embedded defaults; print the latest meeting's attendance and the series."""
    from devtools.demo import run_demo  # devtools only when asked: the app never needs it

    run_demo(runtime_of(current_app).settings, people, port, keep_running)


@audit_group.command("export")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Deliveries or management records.")
@click.option("--since", callback=_moment, help="Received or made at or after: ISO-8601, UTC by default.")
@click.option("--until", callback=_moment, help="Received or made before: ISO-8601, UTC by default.")
@click.option("--cursor", type=click.IntRange(min=0), help="Resume after the line with this id.")
def export_audit(kind: str, since: datetime | None, until: datetime | None, cursor: int | None) -> None:
    """Write the audit log to stdout as NDJSON, oldest first, as GET /api/audit/export does."""
    wanted = ExportRange(kind, since, until, cursor)
    for line in export_lines(runtime_of(current_app).Db, wanted):
        click.echo(line, nl=False)


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    groups = (db_group, rooms_group, roster_group, events_group, sessions_group, people_group, audit_group)
    for command in (*groups, worker, emulator_command, demo_command):
        app.cli.add_command(command)
