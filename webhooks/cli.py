"""Flask commands: `flask --app wsgi db upgrade`, and each feature's group."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webhooks import runtime_of
from workers import migrate

db = AppGroup("db", help="Database schema.")


@db.command("upgrade")
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


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    from webhooks import demo, emulator_cli, event_cli, room_cli, session_cli

    app.cli.add_command(db)
    app.cli.add_command(worker)  # flask worker
    room_cli.register(app)  # flask rooms create|list|show|delete|rotate-token
    emulator_cli.register(app)  # flask emulator
    event_cli.register(app)  # flask events replay|relay
    session_cli.register(app)  # flask sessions rebuild
    demo.register(app)  # flask demo
