"""Schema migrations (Alembic), applied at start so an upgraded image keeps years of history.

``upgrade(engine)`` is what ``store.create_schema`` runs. It is safe when several replicas start
at once: each upgrade runs inside one transaction that holds the database's migration lock
(a PostgreSQL advisory lock, or SQLite's write lock via BEGIN IMMEDIATE), so one process migrates
and the others then find the schema already at head. A database already at ``HEAD_REVISION``
is recognised by one read, without importing Alembic (0.3-0.5 s on every command). A database
created by ``SQLModel.metadata.create_all`` before migrations existed is stamped at the first
revision instead of failing on "table already exists".

Developers write a new revision after changing ``monitor/store.py`` with
``.venv/bin/alembic revision --autogenerate -m "what changed"`` (alembic.ini sits at the
repository root) and set ``HEAD_REVISION`` to it; ``tests/test_migrations.py`` fails while models
and migrations, or ``HEAD_REVISION`` and the newest revision, disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent
FIRST_REVISION = "0001"
HEAD_REVISION = "0004"  # the newest file in versions/
ADVISORY_LOCK_KEY = 0x636D6967  # "cmig": one lock id for every replica of this service
PRE_MIGRATION_TABLE = "snapshot"  # present in every database create_all ever made


def config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision, keeping every row."""
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    with _exclusive(engine) as connection:
        cfg = config(connection)
        if _predates_migrations(connection):
            command.stamp(cfg, FIRST_REVISION)
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _predates_migrations(connection: Connection) -> bool:
    tables = inspect(connection)
    return tables.has_table(PRE_MIGRATION_TABLE) and not tables.has_table("alembic_version")


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other process can migrate alongside; committed on success."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": ADVISORY_LOCK_KEY})
            yield connection
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        locking = _sqlite_locking_engine(engine)
        try:
            with locking.begin() as connection:
                yield connection
        finally:
            locking.dispose()
    else:
        with engine.begin() as connection:
            yield connection


def _sqlite_locking_engine(engine: Engine) -> Engine:
    """pysqlite runs DDL outside any transaction, so two processes could both create a table.

    This engine (SQLAlchemy's documented pysqlite recipe) leaves transactions to us and opens
    each with BEGIN IMMEDIATE: the whole upgrade holds the write lock, and a second process
    waits on busy_timeout, then sees the schema at head.
    """
    locking = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(locking, "connect")
    def _manual_transactions(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None

    @event.listens_for(locking, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return locking
