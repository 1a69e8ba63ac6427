"""Store queries and invariants, on a SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor import store
from monitor.store import Change, Check, SourceState, Version

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database: PostgreSQL setup costs seconds per test."""


def test_identical_raw_bytes_are_stored_once_and_read_back_intact(engine: Engine) -> None:
    body = b"<html><body><p>We will not deploy unsafe models.</p></body></html>" * 50
    with store.session(engine) as s:
        first_id = store.store_snapshot(s, store.pack_snapshot(body, "text/html", T0))
        again_id = store.store_snapshot(
            s, store.pack_snapshot(body, "text/html", T0 + timedelta(hours=1)))
        s.commit()
        assert first_id == again_id
        snapshot = s.get(store.Snapshot, first_id)
        assert snapshot is not None and snapshot.size == len(body)
        assert len(snapshot.body) < len(body)  # compressed at rest
        assert store.snapshot_body(snapshot) == body
        assert snapshot.first_seen_at == T0  # the first sighting is kept


def test_snapshot_dedupe_survives_two_writers_at_once(engine: Engine) -> None:
    body = b"same bytes fetched by two sources"
    ids: list[int | None] = []
    barrier = threading.Barrier(2)

    def write() -> None:
        barrier.wait()
        with store.session(engine) as s:
            ids.append(store.store_snapshot(s, store.pack_snapshot(body, "text/plain", T0)))
            s.commit()

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 2 and ids[0] == ids[1]


def test_lease_is_exclusive_until_released_or_expired(engine: Engine) -> None:
    ttl = timedelta(minutes=10)
    assert store.acquire_lease(engine, "src", worker="a", now=T0, ttl=ttl)
    assert not store.acquire_lease(engine, "src", worker="b", now=T0 + timedelta(minutes=1),
                                   ttl=ttl)
    # a dead worker's lease expires
    assert store.acquire_lease(engine, "src", worker="b", now=T0 + timedelta(minutes=11), ttl=ttl)
    store.release_lease(engine, "src", worker="a")  # not a's any more: no effect
    assert not store.acquire_lease(engine, "src", worker="a", now=T0 + timedelta(minutes=12),
                                   ttl=ttl)
    store.release_lease(engine, "src", worker="b")
    assert store.acquire_lease(engine, "src", worker="a", now=T0 + timedelta(minutes=12), ttl=ttl)


def test_a_quiet_check_whose_lease_was_taken_over_stores_nothing(engine: Engine) -> None:
    ttl = timedelta(seconds=30)
    store.acquire_lease(engine, "src", worker="a", now=T0, ttl=ttl)
    store.acquire_lease(engine, "src", worker="b", now=T0 + timedelta(minutes=5), ttl=ttl)
    check = {"source_id": "src", "started_at": T0, "url": "https://example.org/",
             "outcome": "not_modified", "duration_ms": 1, "bytes": 0}

    late = store.record_quiet_check(engine, "a", {"last_outcome": "not_modified"}, check)
    owner = store.record_quiet_check(engine, "b", {"last_outcome": "not_modified"}, check)

    assert (late, owner) == (False, True)
    with Session(engine) as s:
        assert len(s.exec(select(Check)).all()) == 1
        assert s.get(SourceState, "src").lease_owner is None  # released by b's record


def test_only_one_of_many_racing_workers_gets_the_lease(engine: Engine) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def race(worker: str) -> None:
        barrier.wait()
        results.append(store.acquire_lease(engine, "new-src", worker=worker, now=T0,
                                           ttl=timedelta(minutes=5)) is not None)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def _change(source_id: str, at: datetime, status: str = "removed", **kw: object) -> Change:
    fields: dict[str, object] = dict(source_id=source_id, key="k", status=status, reason="gone",
                                     before="We will pause.", after=None, url="https://x.test/p",
                                     detected_at=at, new_snapshot="ab" * 32)
    fields.update(kw)
    return Change(**fields)  # type: ignore[arg-type]


def test_recent_changes_are_newest_first_and_filter_by_source(engine: Engine) -> None:
    with store.session(engine) as s:
        s.add(_change("a", T0))
        s.add(_change("b", T0 + timedelta(hours=2)))
        s.add(_change("a", T0 + timedelta(hours=1), status="weakened"))
        s.commit()
        assert [(c.source_id, c.status) for c in store.recent_changes(s)] == [
            ("b", "removed"), ("a", "weakened"), ("a", "removed")]
        assert [c.status for c in store.recent_changes(s, source_id="a", limit=1)] == ["weakened"]


def test_change_json_has_the_documented_fields_in_utc(engine: Engine) -> None:
    with store.session(engine) as s:
        change = _change("openai-usage", T0, commitment_id="no-military",
                         commitment_title="No military use", section_before="Uses")
        s.add(change)
        s.commit()
        data = store.change_json(store.recent_changes(s)[0])
    assert data["source"] == "openai-usage"
    assert data["commitment"] == "no-military"
    assert data["status"] == "removed"
    assert data["before"] == "We will pause." and data["after"] is None
    assert data["reason"] == "gone"
    assert data["detected_at"] == "2026-03-01T08:00:00Z"
    assert data["snapshot"] == "ab" * 32
    assert data["section"] == "Uses"
    assert isinstance(data["id"], int)


@SQLITE_ONLY
def test_removed_sentences_remember_what_was_reported_removed(engine: Engine) -> None:
    with store.session(engine) as s:
        s.add(_change("a", T0, before="We will pause."))
        s.add(_change("a", T0, status="weakened", before="We must test."))
        s.add(_change("b", T0, before="Other source."))
        s.commit()
        assert store.removed_sentences(s, "a") == {"We will pause."}


@SQLITE_ONLY
def test_history_lists_checks_and_versions_newest_first(engine: Engine) -> None:
    with store.session(engine) as s:
        snapshot_id = store.store_snapshot(s, store.pack_snapshot(b"v1", "text/html", T0))
        for hours in (0, 6):
            s.add(Check(source_id="a", started_at=T0 + timedelta(hours=hours), url="u",
                        outcome="unchanged"))
        for n, text in enumerate(("one", "two")):
            s.add(Version(source_id="a", snapshot_id=snapshot_id, text=text,
                          text_sha256=store.sha256(text), normaliser_version=1, url="u",
                          fetched_at=T0 + timedelta(hours=n)))
        s.commit()
        checks, versions = store.history(s, "a")
    assert [c.started_at for c in checks] == [T0 + timedelta(hours=6), T0]
    assert [v.text for v in versions] == ["two", "one"]


def test_a_new_sqlite_file_opens_while_another_connection_holds_its_write_lock(tmp_path) -> None:
    """A replica starting while another migrates a new file: switching the file to WAL is
    refused at once (no busy wait) while the lock is held, so opening must wait it out."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE migrating (x)")
    release = threading.Timer(0.3, holder.execute, ["COMMIT"])
    release.start()
    engine = store.make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            tables = connection.exec_driver_sql("SELECT name FROM sqlite_master").scalars()
            assert (mode, list(tables)) == ("wal", ["migrating"])
    finally:
        release.join()
        engine.dispose()
        holder.close()


def _checks(s: Session, source_id: str, times: list[datetime], outcome: str = "not_modified"
            ) -> list[int]:
    return [store.add_check(s, {"source_id": source_id, "started_at": at, "url": "u",
                                "outcome": outcome}).id or 0 for at in times]


def test_thinning_keeps_each_source_days_first_and_last_quiet_check_and_all_that_is_evidence(
        engine: Engine) -> None:
    day1 = datetime(2026, 3, 1, tzinfo=UTC)
    day2, day3 = day1 + timedelta(days=1), day1 + timedelta(days=2)
    hours = [timedelta(hours=h) for h in range(24)]
    with store.session(engine) as s:
        baseline = _checks(s, "a", [day1 + timedelta(minutes=10)], "baseline")
        quiet1 = _checks(s, "a", [day1 + h for h in hours[1:]])
        failed = _checks(s, "a", [day1 + timedelta(hours=12, minutes=30)], "failed")
        recovered, missing_quote = quiet1[13], quiet1[15]  # 14:00 and 16:00
        s.add(store.Alert(source_id="a", check_id=recovered, kind="health_recovered",
                          subject="ok again"))
        s.add(_change("a", day1, check_id=missing_quote))
        other = _checks(s, "b", [day1 + hours[2], day1 + hours[3]], "unchanged")
        quiet2 = _checks(s, "a", [day2 + h for h in hours])
        quiet3 = _checks(s, "a", [day3 + h for h in hours])
        s.commit()

    # Only whole days before the cutoff are thinned: day 3 is still being checked.
    assert store.thin_checks(engine, day3 + timedelta(hours=12)) == 19 + 22
    with store.session(engine) as s:
        left = set(s.exec(select(Check.id)))
    assert left == {*baseline, *failed, quiet1[0], quiet1[-1], recovered, missing_quote, *other,
                    quiet2[0], quiet2[-1], *quiet3}
    assert store.thin_checks(engine, day3 + timedelta(hours=12)) == 0


@SQLITE_ONLY
def test_thinning_an_empty_store_or_one_without_old_checks_deletes_nothing(engine: Engine) -> None:
    assert store.thin_checks(engine, T0) == 0
    with store.session(engine) as s:
        _checks(s, "a", [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)])
        s.commit()
    assert store.thin_checks(engine, T0 + timedelta(hours=15)) == 0  # 23:00: the day goes on
    assert store.thin_checks(engine, T0 + timedelta(hours=16)) == 1


@SQLITE_ONLY
def test_thinning_stops_between_days_when_told_to(engine: Engine) -> None:
    days = [T0, T0 + timedelta(days=1)]
    with store.session(engine) as s:
        for day in days:
            _checks(s, "a", [day, day + timedelta(hours=1), day + timedelta(hours=2)])
        s.commit()
    answers = iter([True, False])
    assert store.thin_checks(engine, T0 + timedelta(days=5), keep_going=lambda: next(answers)) == 1
    assert store.thin_checks(engine, T0 + timedelta(days=5)) == 1  # the day left for later



def _deletes(engine: Engine) -> list[str]:
    """Every DELETE the engine runs from now on (one per thinning transaction)."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: seen.append(statement)
                 if statement.lstrip().upper().startswith("DELETE") else None)
    return seen


def test_a_crowded_day_is_thinned_in_batches_of_sources_to_the_same_result(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each delete is its own short transaction (SQLite's write lock is held per delete), and
    cutting the day into batches changes nothing that is kept."""
    hours = [T0.replace(hour=0) + timedelta(hours=h) for h in range(24)]
    sources = [f"s{n:02d}" for n in range(10)]
    with store.session(engine) as s:
        kept = {i for source in sources for i in _checks(s, source, hours)[::23]}
        s.commit()
    monkeypatch.setattr(store, "THIN_BATCH_ROWS", 50)  # two sources (48 checks) a batch
    deletes = _deletes(engine)
    assert store.thin_checks(engine, T0 + timedelta(days=1)) == 10 * 22
    assert len(deletes) == 5
    with store.session(engine) as s:
        assert set(s.exec(select(Check.id))) == kept
    assert store.thin_checks(engine, T0 + timedelta(days=1)) == 0
    assert len(deletes) == 5  # a day thinned already is read, and takes no write lock


def test_a_batch_of_sources_fits_the_999_variables_of_sqlite_before_3_32(
        sqlite_engine: Engine) -> None:
    """Every source of a batch is a bound parameter three times over."""
    event.listen(sqlite_engine, "connect", lambda connection, _record: connection.setlimit(
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
    sqlite_engine.dispose()  # connections opened from now on carry the old limit
    day = T0.replace(hour=0)
    rows = [{"source_id": f"s{n:03d}", "started_at": day + timedelta(hours=h), "url": "u",
             "outcome": "not_modified"} for n in range(store.THIN_BATCH_SOURCES + 100)
            for h in range(3)]
    with sqlite_engine.begin() as conn:
        conn.execute(insert(Check), rows)
    assert store.thin_checks(sqlite_engine, T0 + timedelta(days=1)) == len(rows) // 3

@SQLITE_ONLY
def test_thinning_told_to_stop_leaves_the_rest_of_the_day_for_the_next_run(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    hours = [T0.replace(hour=0) + timedelta(hours=h) for h in range(3)]
    with store.session(engine) as s:
        for source in ("a", "b", "c"):
            _checks(s, source, hours)
        s.commit()
    monkeypatch.setattr(store, "THIN_BATCH_ROWS", 3)  # one source a batch
    answers = iter([True, False])
    assert store.thin_checks(engine, T0 + timedelta(days=1),
                             keep_going=lambda: next(answers)) == 1
    assert store.thin_checks(engine, T0 + timedelta(days=1)) == 2

def test_times_read_back_as_stored_in_utc_whatever_the_servers_time_zone(
        database_url: str) -> None:
    """Times are zoned columns: a server set to another zone neither shifts nor relabels them."""
    if database_url.startswith("postgresql"):  # as a server installed in Berlin would be
        admin = store.make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database_url.rsplit("/", 1)[1]}" '
                              "SET timezone TO 'Europe/Berlin'"))
        admin.dispose()
    engine = store.make_engine(database_url)
    store.create_schema(engine)
    with store.session(engine) as s:
        store.add_check(s, {"source_id": "a", "started_at": T0, "url": "u",
                            "outcome": "baseline"})
        s.commit()
        checks, _ = store.history(s, "a")
    assert store.as_utc(checks[0].started_at) == T0
    engine.dispose()
