"""`flask emulator`: serve the Metered emulator for development and the demo."""

from __future__ import annotations

import click
from flask import Flask
from werkzeug.serving import run_simple

from webhooks.emulator import create_emulator

DEFAULT_SECRET = "emulator-secret"  # noqa: S105 - a dev-only default, printed so people can use it


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
    click.echo(f"Metered emulator: METERED_API_URL=http://{host}:{port}/api/v1")
    # Never print a key that came from the environment; the built-in default is public anyway.
    click.echo("secret key: " + ("as given" if secret else f"{DEFAULT_SECRET} (METERED_SECRET_KEY)"))
    run_simple(host, port, create_emulator(secret or DEFAULT_SECRET, app_id), threaded=True)


def register(app: Flask) -> None:
    """Attach the `emulator` command to the app."""
    app.cli.add_command(emulator_command)
