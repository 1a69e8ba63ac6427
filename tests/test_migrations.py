"""Alembic migrations: an empty database, an older one with rows in it, one made before
migrations existed, and several replicas starting at once all end at head with nothing lost."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from monitor import migrations, store

FETCHED = datetime(2025, 5, 14, 8, 0, tzinfo=UTC)


@pytest.fixture
def bare_engine(database_url: str) -> Engine:
    """An engine on an empty database (SQLite file, then fresh PostgreSQL) with no schema yet."""
    engine = store.make_engine(database_url)
    yield engine
    engine.dispose()


def head() -> str:
    return ScriptDirectory.from_config(migrations.config()).get_current_head()


def add_history(engine: Engine) -> None:
    """Rows in the columns of the first revision only (Core inserts name just those)."""
    with engine.begin() as connection:
        snapshot = connection.execute(insert(store.Snapshot).values(
            sha256="a" * 64, media_type="text/html", size=3, body=b"x\x9c", first_seen_at=FETCHED))
        snapshot_id = snapshot.inserted_primary_key[0]
        connection.execute(insert(store.Check).values(
            source_id="rsp", started_at=FETCHED, duration_ms=0, bytes=0,
            url="https://example.org/", outcome="baseline", snapshot_id=snapshot_id))
        connection.execute(insert(store.SourceState).values(
            source_id="rsp", last_checked_at=FETCHED, failing_streak=0, health_alerted=False))


def create_first_schema_without_alembic(engine: Engine) -> None:
    """A database as `create_all` made it before migrations existed: the first revision's
    tables, no alembic_version."""
    with engine.begin() as connection:
        command.upgrade(migrations.config(connection), migrations.FIRST_REVISION)
        connection.execute(text("DROP TABLE alembic_version"))


def assert_history_kept(engine: Engine) -> None:
    with Session(engine) as session:
        check = session.exec(select(store.Check)).one()
        assert (check.source_id, check.started_at, check.outcome) == ("rsp", FETCHED, "baseline")
        assert session.exec(select(store.Snapshot)).one().sha256 == "a" * 64
        assert session.get(store.SourceState, "rsp").last_checked_at == FETCHED


def schema_drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(migrations.config()).get_heads()
    assert len(heads) == 1, f"merge the parallel revisions {heads}: alembic merge heads"


def test_head_revision_names_the_newest_migration() -> None:
    assert head() == migrations.HEAD_REVISION


def test_a_database_at_head_is_opened_without_importing_alembic(tmp_path) -> None:
    """Importing Alembic costs 0.3-0.5 s, on every command."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    store.create_schema(store.make_engine(url))
    code = ("import sys; from monitor import store; "
            "store.create_schema(store.make_engine(sys.argv[1])); "
            "print('alembic' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                              check=True).stdout
    assert imported.strip() == "False"


def test_empty_database_upgrades_to_head_matching_the_models(bare_engine: Engine) -> None:
    store.create_schema(bare_engine)

    assert migrations.current_revision(bare_engine) == head()
    drift = schema_drift(bare_engine)
    assert drift == [], (
        f"monitor/store.py and the migrations disagree: {drift}. Write a revision with "
        "`.venv/bin/alembic revision --autogenerate -m '...'`")


def test_database_at_the_first_revision_keeps_its_rows_when_upgraded(bare_engine: Engine) -> None:
    with bare_engine.begin() as connection:
        command.upgrade(migrations.config(connection), migrations.FIRST_REVISION)
    add_history(bare_engine)

    store.create_schema(bare_engine)

    assert migrations.current_revision(bare_engine) == head()
    assert_history_kept(bare_engine)


def test_database_created_before_migrations_is_stamped_not_recreated(bare_engine: Engine) -> None:
    create_first_schema_without_alembic(bare_engine)
    assert migrations.current_revision(bare_engine) is None
    add_history(bare_engine)

    store.create_schema(bare_engine)

    assert migrations.current_revision(bare_engine) == head()
    assert_history_kept(bare_engine)


def test_starting_twice_is_a_no_op(bare_engine: Engine) -> None:
    store.create_schema(bare_engine)
    add_history(bare_engine)

    store.create_schema(bare_engine)

    assert_history_kept(bare_engine)


def test_replicas_starting_at_once_on_an_empty_database_all_succeed(database_url: str) -> None:
    engines = [store.make_engine(database_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start_replica(engine: Engine) -> None:
        start.wait()
        try:
            store.create_schema(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start_replica, args=(e,), daemon=True) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert migrations.current_revision(engines[0]) == head()
        assert schema_drift(engines[0]) == []
    finally:
        for engine in engines:
            engine.dispose()


def test_downgrade_to_base_removes_every_table(bare_engine: Engine) -> None:
    store.create_schema(bare_engine)

    with bare_engine.begin() as connection:
        command.downgrade(migrations.config(connection), "base")

    assert set(inspect(bare_engine).get_table_names()) <= {"alembic_version"}
