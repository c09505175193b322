"""`flask rooms create|list|show|delete|rotate-token`: room management from the shell."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import NoneType, UnionType
from typing import IO, Annotated, Any, Literal, Union, get_args, get_origin

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from pydantic import ValidationError

from webhooks import runtime_of
from workers import rooms
from workers.metered import MeteredClient, MeteredError, MeteredTimeout
from workers.models import Room
from workers.room_options import ROLLCALL_FIELDS, CreateRoomRequest
from workers.timefmt import iso_ms

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
            room, urls = rooms.create_room(runtime.Session, metered, runtime.settings, request)
    _echo_json(rooms.room_view(room, urls))


_with_room_options(create_room)


@rooms_group.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived rooms.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_rooms(include_archived: bool, as_json: bool) -> None:
    """List the rooms, oldest first."""
    found = list(_every_room(include_archived))
    if as_json:
        _echo_json([rooms.room_view(room) for room in found])
        return
    if not found:
        click.echo("no rooms yet: create one with `flask --app wsgi rooms create`", err=True)
    for room in found:
        state = "archived" if room.archived_at else str(room.metered_room.get("privacy", ""))
        click.echo(f"{room.room_name:<32} {room.metered_room_id or '-':<26} {state}")


def _every_room(include_archived: bool, page_size: int = 200) -> Iterator[Room]:
    after = None
    while page := rooms.list_rooms(
        runtime_of(current_app).Session, limit=page_size, after=after, include_archived=include_archived
    ):
        yield from page
        after = page[-1].id


@rooms_group.command("show")
@click.argument("name")
def show_room(name: str) -> None:
    """Print one room as JSON."""
    with _explained_failures():
        _echo_json(rooms.room_view(rooms.get_room(runtime_of(current_app).Session, name)))


@rooms_group.command("delete")
@click.argument("name")
def delete_room(name: str) -> None:
    """Archive a room at Metered; its attendance history stays."""
    _with_metered(lambda metered: rooms.archive_room(runtime_of(current_app).Session, metered, name))
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
            runtime.Session, metered, runtime.settings, name, 0 if revoke_old else None
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


def register(app: Flask) -> None:
    """Attach the `rooms` command group to the app."""
    app.cli.add_command(rooms_group)
