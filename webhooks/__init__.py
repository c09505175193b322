"""Rollcall's web process: the webhook receiver, the management and report API, and the pages."""

from __future__ import annotations

import logging

from flask import Flask

from workers.runtime import migrate
from workers.runtime.log_redaction import install_log_redaction
from workers.runtime.process import Runtime
from workers.runtime.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app for `settings` (read from the environment when not given)."""
    app = Flask(__name__, instance_relative_config=True)
    settings = settings or load_settings()
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up chatter on every command
    install_log_redaction(settings)
    app.extensions["rollcall"] = Runtime.start(settings, app.instance_path)
    database_url = settings.resolved_database_url(app.instance_path)
    if settings.database_url is None:
        # The dev default (a SQLite file in the instance folder) gets its schema without a release step.
        migrate.upgrade_locked(database_url, app.instance_path)
    # A schema behind the migrations is reported by the serving process (gunicorn.conf.py), not here:
    # `flask db upgrade` builds this same app.

    from webhooks import cli, headers, ops, request_ids, routing
    from webhooks.errors import register_error_handlers

    app.url_map.converters.update(routing.CONVERTERS)  # before any rule that names one
    register_error_handlers(app)
    headers.register(app)
    request_ids.register(app)
    app.register_blueprint(ops.blueprint)
    _register_optional_blueprints(app)
    cli.register(app)
    return app


def _register_optional_blueprints(app: Flask) -> None:
    # Each feature module exposes `blueprint`; listed here so the app's surface is readable in one place.
    from webhooks import (
        audit,
        audit_export,
        audit_records,
        bulk_replay,
        erasure,
        hooks,
        metrics,
        openapi,
        pages,
        reports,
        rooms,
        roster,
        roster_forms,
        seals,
        series,
        session_admin,
    )

    api = (
        rooms,
        roster,
        hooks,
        audit,
        audit_records,
        audit_export,
        bulk_replay,
        erasure,
        seals,
        reports,
        series,
        session_admin,
    )
    for module in (*api, pages, roster_forms, metrics, openapi):
        app.register_blueprint(module.blueprint)


def runtime_of(app: Flask) -> Runtime:
    """Return the app's Runtime (settings, database, Redis)."""
    runtime: Runtime = app.extensions["rollcall"]
    return runtime
