"""Write many rows in one go on the driver's own connection: COPY on PostgreSQL, executemany elsewhere.

SQLAlchemy's executemany does per-row, per-parameter bookkeeping in Python on the way to the driver; for
the tens of thousands of rows a rebuild writes, that costs more than the database's own work. Here each
column's bind processor is looked up once and applied inline, and PostgreSQL gets COPY, its fastest path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from itertools import chain
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, insert, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

Rows = Iterable[Mapping[str, Any]]
BindPlan = Sequence[tuple[str, Callable[[Any], Any] | None]]


def insert_rows(db: Session, table: Table, rows: Rows) -> None:
    """Insert `rows` (dicts, all of the same columns) into `table`, in the session's transaction."""
    pending = iter(rows)
    first = next(pending, None)
    if first is None:
        return
    names = list(first.keys())
    _check_defaults(table, names)
    connection = db.connection()
    dialect, driver = connection.dialect, connection.connection.driver_connection
    write = _copy if dialect.name == "postgresql" else _executemany
    error_class = dialect.loaded_dbapi.Error
    try:
        write(driver, dialect, table, names, chain([first], pending))
    except error_class as error:  # raised as SQLAlchemy's, like every other statement's
        raise DBAPIError.instance(f"bulk insert into {table.name}", None, error, error_class) from error


SCRATCH_TABLE_ROWS = 200  # from this many rows on, update_rows goes through a scratch table on PostgreSQL


def update_rows(db: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update rows of `table` by primary key `id` to `rows`' values (dicts, all of the same columns)."""
    if not rows:
        return
    names = list(rows[0].keys())
    connection = db.connection()
    dialect = connection.dialect
    # SQLite's executemany runs in C: nothing to gain. On PostgreSQL a scratch table costs a few catalog
    # writes per call, more than a live meeting's handful of rows.
    if dialect.name != "postgresql" or len(rows) < SCRATCH_TABLE_ROWS:
        values: dict[str, Any] = {name: bindparam(name) for name in names if name != "id"}
        statement = update(table).where(table.c.id == bindparam("_id")).values(values)
        # The key goes in as "_id" only: under "id" too, SQLAlchemy would SET the primary key as well.
        keyed = [
            {**{name: value for name, value in row.items() if name != "id"}, "_id": row["id"]} for row in rows
        ]
        connection.execute(statement, keyed)
        return
    # One set-based UPDATE from a COPY-filled scratch table: an UPDATE per row costs ten times as much.
    quote = dialect.identifier_preparer
    scratch = quote.quote(f"_update_{table.name}")
    driver: Any = connection.connection.driver_connection
    assigned = ", ".join(f"{quote.quote(n)} = s.{quote.quote(n)}" for n in names if n != "id")
    columns = ", ".join(map(quote.quote, names))
    with driver.cursor() as cursor:
        # CREATE ... AS, not LIKE: the scratch table takes only these columns, and none of their constraints.
        cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS "  # noqa: S608 - our own identifiers
            f"SELECT {columns} FROM {quote.format_table(table)} WITH NO DATA"
        )
        with cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            plan = bind_plan(table, dialect, names)
            for row in rows:
                copy.write_row(bound_values(plan, row))
        cursor.execute(
            f"UPDATE {quote.format_table(table)} AS t SET {assigned} FROM {scratch} AS s "  # noqa: S608
            f"WHERE t.id = s.id"
        )
        cursor.execute(f"DROP TABLE {scratch}")


def _check_defaults(table: Table, names: list[str]) -> None:
    # Nothing here applies Python-side column defaults the way SQLAlchemy's insert() would.
    missing = [
        column.name for column in table.columns if column.default is not None and column.name not in names
    ]
    if missing:
        raise ValueError(f"rows for {table.name} lack {', '.join(missing)}: defaults are not applied here")


def _executemany(driver: Any, dialect: Dialect, table: Table, names: list[str], rows: Rows) -> None:
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    if not compiled.positional:
        raise NotImplementedError(f"{dialect.name}: only positional parameter styles are supported")
    plan = bind_plan(table, dialect, compiled.positiontup or ())  # the statement's order, not the rows'
    with closing(driver.cursor()) as cursor:
        cursor.executemany(compiled.string, (bound_values(plan, row) for row in rows))


def _copy(driver: Any, dialect: Dialect, table: Table, names: list[str], rows: Rows) -> None:
    quote = dialect.identifier_preparer
    sql = f"COPY {quote.format_table(table)} ({', '.join(map(quote.quote, names))}) FROM STDIN"
    # Rows stream to the server as they are made, so it indexes them while Python makes the next ones.
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        plan = bind_plan(table, dialect, names)
        for row in rows:
            copy.write_row(bound_values(plan, row))


def bind_plan(table: Table, dialect: Dialect, names: Sequence[str]) -> BindPlan:
    """Return each named column with its type's bind processor for `dialect`, looked up once."""
    return [(name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]


def bound_values(plan: BindPlan, row: Mapping[str, Any]) -> list[Any]:
    """Return a row's values in the plan's order, as the driver takes them."""
    return [row[name] if convert is None else convert(row[name]) for name, convert in plan]
