"""Alembic environment: the URL comes from workers.runtime.migrate, the schema from workers.models."""

from typing import Any

from alembic import context
from sqlalchemy import event, pool

from workers.models import Base
from workers.runtime.connections import make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run the migrations on the configured database."""
    url = config.attributes["database_url"]
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    if url.startswith("sqlite"):
        # Batch mode rebuilds a table by copy, drop and rename: with foreign keys enforced, dropping a
        # table that other rows point at fails. The copy keeps every row, so nothing dangles after.
        event.listen(engine, "connect", _without_foreign_keys)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _without_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


run_migrations()
