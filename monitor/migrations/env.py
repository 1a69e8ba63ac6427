"""Alembic environment: runs on the connection ``monitor.migrations.upgrade`` hands over, or, from
the ``alembic`` command line, on DATABASE_URL (SQLite under state/ when unset)."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from monitor import store

target_metadata = SQLModel.metadata

if context.config.config_file_name:  # the alembic command line; the service keeps its logging
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = store.make_engine()
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the DDL for a DBA instead of running it."""
    context.configure(url=store.database_url(), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True, render_item=_plain_types)
    with context.begin_transaction():
        context.run_migrations()


def _plain_types(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write SQLModel's column types as the plain SQLAlchemy types they store, so a revision
    means the same DDL for ever, whatever later SQLModel releases do to their classes."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, AutoString):
        length = obj.impl.length
        return f"sa.String(length={length})" if length else "sa.String()"
    return False


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
