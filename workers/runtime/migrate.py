"""Runtime: Alembic, driven from code: the migrations folder ships beside the packages."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    """Return an Alembic config for `database_url` without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Passed as an attribute, not an option: options go through ConfigParser, which mangles '%'.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (the latest by default)."""
    command.upgrade(alembic_config(database_url), revision)


def is_current(database_url: str) -> bool:
    """Say whether the database is at the latest migration."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from workers.runtime.connections import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    return set(current) == set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def warn_if_behind(database_url: str) -> None:
    """Log a warning when the schema is behind the migrations, or the database cannot be reached."""
    # A warning, not a refusal: the web process must start (and /readyz say why) with the database down.
    try:
        if not is_current(database_url):
            log.warning(
                "DATABASE_URL: the schema is behind the migrations; run `flask --app wsgi db upgrade`"
            )
    except DBAPIError as error:
        log.warning("DATABASE_URL: unreachable at start-up (%s); /readyz reports it", type(error).__name__)


def upgrade_locked(database_url: str, folder: str | Path) -> None:
    """Upgrade to the latest schema, one process at a time (several may start on the same file)."""
    with open(Path(folder) / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        upgrade(database_url)
