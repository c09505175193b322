"""Rollcall's web process: the webhook receiver, the management and report API, and the pages."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import DBAPIError

from workers import migrate
from workers.runtime import Runtime
from workers.settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app for `settings` (read from the environment when not given)."""
    app = Flask(__name__, instance_relative_config=True)
    settings = settings or load_settings()
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up chatter on every command
    app.extensions["rollcall"] = Runtime.start(settings, app.instance_path)
    database_url = settings.resolved_database_url(app.instance_path)
    if settings.database_url is None:
        # The dev default (a SQLite file in the instance folder) gets its schema without a release step.
        migrate.upgrade_locked(database_url, app.instance_path)
    elif not settings.demo:
        _warn_if_schema_behind(database_url)

    from webhooks import cli, ops, routing
    from webhooks.errors import register_error_handlers

    app.url_map.converters.update(routing.CONVERTERS)  # before any rule that names one
    register_error_handlers(app)
    app.register_blueprint(ops.blueprint)
    _register_optional_blueprints(app)
    cli.register(app)
    return app


def _register_optional_blueprints(app: Flask) -> None:
    # Each feature module exposes `blueprint`; listed here so the app's surface is readable in one place.
    from webhooks import audit, hooks, metrics, openapi, pages, reports, rooms, session_admin

    for module in (rooms, hooks, audit, reports, session_admin, pages, metrics, openapi):
        app.register_blueprint(module.blueprint)


def _warn_if_schema_behind(database_url: str) -> None:
    # A warning, not a refusal: the web process must start (and /readyz say why) with the database down.
    try:
        if not migrate.is_current(database_url):
            log.warning(
                "DATABASE_URL: the schema is behind the migrations; run `flask --app wsgi db upgrade`"
            )
    except DBAPIError as error:
        log.warning("DATABASE_URL: unreachable at start-up (%s); /readyz reports it", type(error).__name__)


def runtime_of(app: Flask) -> Runtime:
    """Return the app's Runtime (settings, database, Redis)."""
    runtime: Runtime = app.extensions["rollcall"]
    return runtime
