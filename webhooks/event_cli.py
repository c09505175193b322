"""`flask events replay|relay`: reprocess stored webhook deliveries from the shell."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webhooks import runtime_of
from workers import jobs

events = AppGroup("events", help="Stored webhook deliveries.")


@events.command("replay")
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def replay(delivery_ids: tuple[int, ...]) -> None:
    """Fold the given deliveries again (by id, as GET /api/events lists them)."""
    runtime = runtime_of(current_app)
    missing = []
    for delivery_id in delivery_ids:
        status = jobs.replay(runtime, delivery_id)
        if status is None:
            missing.append(delivery_id)
        else:
            click.echo(f"delivery {delivery_id}: {status}")
    if missing:
        raise click.ClickException(f"no such delivery: {', '.join(map(str, missing))}")


@events.command("relay")
def relay() -> None:
    """Signal a worker for every room with deliveries never processed, however recent."""
    count = jobs.relay_rooms(runtime_of(current_app), None, force=True)
    click.echo(f"signalled {count} room(s)")


def register(app: Flask) -> None:
    """Attach `flask events` to the app."""
    app.cli.add_command(events)
