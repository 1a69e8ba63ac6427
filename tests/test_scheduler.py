"""The daemon: when sources run, live watchlist edits, and a real `run` process under SIGTERM."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import Response, Site, rewrite
from faults_support import ServiceProcess
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor import pipeline, store
from monitor.scheduler import Service, as_utc, first_runs

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PAGE = ("<html><body><main><h1>Policy</h1><p>We will not deploy unsafe models.</p>"
        "</main></body></html>")


# --- first_runs: pure ------------------------------------------------------------------------


def test_new_sources_start_within_seconds_staggered_in_watchlist_order() -> None:
    runs = first_runs({"b": HOUR, "a": HOUR, "c": HOUR}, {}, NOW)
    assert runs == {"b": NOW + timedelta(seconds=1), "a": NOW + timedelta(seconds=3),
                    "c": NOW + timedelta(seconds=5)}


def test_a_source_checked_a_moment_ago_waits_for_its_interval() -> None:
    last = NOW - timedelta(minutes=10)
    assert first_runs({"a": HOUR}, {"a": last}, NOW) == {"a": last + HOUR}


def test_overdue_sources_follow_new_ones_most_overdue_first() -> None:
    last = {"late": NOW - 2 * HOUR, "later": NOW - 5 * HOUR, "fresh": NOW - timedelta(minutes=1)}
    runs = first_runs({"late": HOUR, "later": HOUR, "fresh": HOUR, "new": HOUR}, last, NOW)
    assert sorted(runs, key=runs.__getitem__) == ["new", "later", "late", "fresh"]
    assert runs["fresh"] == NOW + timedelta(minutes=59)


def test_a_restart_after_downtime_spreads_every_overdue_source_over_the_window() -> None:
    intervals = {f"s{i}": HOUR for i in range(200)}
    last = dict.fromkeys(intervals, NOW - 3 * HOUR)
    runs = sorted(first_runs(intervals, last, NOW, window=timedelta(seconds=60)).values())
    assert len(runs) == 200 and len(set(runs)) == 200  # every source, no two at once
    assert runs[0] == NOW + timedelta(seconds=1)
    assert runs[-1] < NOW + timedelta(seconds=60)


def test_each_source_keeps_its_own_interval() -> None:
    last = NOW - timedelta(minutes=30)
    runs = first_runs({"hourly": HOUR, "daily": 24 * HOUR}, {"hourly": last, "daily": last}, NOW)
    assert runs == {"hourly": last + HOUR, "daily": last + 24 * HOUR}


# --- Service.reload: a paused scheduler, so nothing runs while we look ---------------------


def watchlist_text(site: Site, *ids: str, every: str = "1h") -> str:
    sources = "".join(f"  - id: {i}\n    company: Lab\n    title: Policy {i}\n"
                      f"    url: {site.url('/' + i)}\n" for i in ids)
    return f"defaults:\n  every: {every}\n  jitter: 0\nsources:\n{sources}"


@pytest.fixture
def paused(tmp_path: Path, site: Site, sqlite_engine: Engine) -> Iterator[Service]:
    path = tmp_path / "watchlist.yaml"
    path.write_text(watchlist_text(site, "alpha", "beta"))
    service = Service(path, sqlite_engine, worker="test")
    service.start(paused=True)
    yield service
    service.stop()


def test_start_schedules_every_source_promptly(paused: Service) -> None:
    runs = paused.next_runs()
    assert sorted(runs) == ["alpha", "beta"]
    assert all(run - store.utcnow() < timedelta(seconds=10) for run in runs.values())


def test_reload_adds_removes_and_reschedules_sources(paused: Service, site: Site) -> None:
    before = paused.next_runs()
    rewrite(paused.path, watchlist_text(site, "alpha", "gamma").replace(
        "    url: " + site.url("/alpha"), "    url: " + site.url("/alpha") + "\n    every: 2d"))
    assert paused.reload() is True
    runs = paused.next_runs()
    assert sorted(runs) == ["alpha", "gamma"]
    assert runs["gamma"] - store.utcnow() < timedelta(seconds=10)
    assert paused.watchlist is not None
    assert paused.watchlist.interval(paused.watchlist.source("alpha")) == timedelta(days=2)
    assert runs["alpha"] >= before["alpha"]


def test_an_edited_url_keeps_the_schedule_and_applies_at_the_next_check(
        paused: Service, site: Site) -> None:
    before = paused.next_runs()
    rewrite(paused.path, watchlist_text(site, "alpha", "beta").replace("/alpha", "/alpha-v2"))
    assert paused.reload() is True
    assert paused.next_runs() == before
    assert paused.watchlist is not None
    assert paused.watchlist.source("alpha").url == site.url("/alpha-v2")


def test_an_unchanged_or_merely_touched_file_is_not_reapplied(paused: Service) -> None:
    assert paused.reload() is False
    rewrite(paused.path, paused.path.read_text())
    assert paused.reload() is False


def test_a_broken_edit_is_logged_and_the_last_good_watchlist_keeps_running(
        paused: Service, site: Site, caplog: pytest.LogCaptureFixture) -> None:
    good = paused.watchlist
    rewrite(paused.path, watchlist_text(site, "alpha", "beta", "delta").replace(
        "every: 1h", "every: often"))
    with caplog.at_level(logging.ERROR, logger="monitor.watchlist"):
        assert paused.reload() is False
    assert paused.watchlist is good
    assert sorted(paused.next_runs()) == ["alpha", "beta"]
    assert f"{paused.path}:2: defaults.every: bad duration 'often'" in caplog.text
    assert "last good" in caplog.text

    rewrite(paused.path, watchlist_text(site, "alpha", "beta", "delta"))
    assert paused.reload() is True
    assert sorted(paused.next_runs()) == ["alpha", "beta", "delta"]


def test_a_deleted_watchlist_keeps_the_last_good_one(paused: Service,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    paused.path.unlink()
    with caplog.at_level(logging.ERROR, logger="monitor.watchlist"):
        assert paused.reload() is False
    assert "cannot read the file" in caplog.text
    assert sorted(paused.next_runs()) == ["alpha", "beta"]


def test_restart_continues_from_the_stored_last_check(tmp_path: Path, site: Site,
                                                      sqlite_engine: Engine) -> None:
    checked = store.utcnow() - timedelta(minutes=20)
    with Session(sqlite_engine) as session:
        session.add(store.SourceState(source_id="alpha", last_checked_at=checked))
        session.commit()
    path = tmp_path / "watchlist.yaml"
    path.write_text(watchlist_text(site, "alpha", "beta"))
    service = Service(path, sqlite_engine, worker="test")
    service.start(paused=True)
    try:
        runs = service.next_runs()
    finally:
        service.stop()
    assert abs(runs["alpha"] - (checked + HOUR)) < timedelta(seconds=1)
    assert runs["beta"] - store.utcnow() < timedelta(seconds=10)


def test_a_source_checked_elsewhere_a_moment_ago_is_skipped_and_follows_that_check(
        paused: Service, site: Site, sqlite_engine: Engine) -> None:
    """A replica, or a manual `check`, got there first: this run waits for the next interval."""
    site.set("/alpha", PAGE)
    assert paused.watchlist is not None
    pipeline.check_all(paused.watchlist, engine=sqlite_engine, source_ids=["alpha"])
    with Session(sqlite_engine) as session:
        state = session.get(store.SourceState, "alpha")
        assert state is not None and state.last_checked_at is not None
        last = as_utc(state.last_checked_at)

    assert paused.check("alpha") is False
    assert site.hits("/alpha") == 1
    assert abs(paused.next_runs()["alpha"] - (last + HOUR)) < timedelta(seconds=1)


def test_a_due_source_is_checked_by_its_job(paused: Service, site: Site,
                                            sqlite_engine: Engine) -> None:
    site.set("/beta", PAGE)
    assert paused.check("beta") is True
    assert [check.outcome for check in checks_of(sqlite_engine, "beta")] == ["baseline"]


def test_the_daemon_thins_quiet_checks_older_than_keep_checks(paused: Service, site: Site,
                                                             sqlite_engine: Engine) -> None:
    long_ago = (store.utcnow() - timedelta(days=40)).replace(hour=12, minute=0)  # one day
    with Session(sqlite_engine) as session:
        for minutes in range(4):
            store.add_check(session, {"source_id": "alpha", "url": "u", "outcome": "unchanged",
                                      "started_at": long_ago + timedelta(minutes=minutes)})
        session.commit()
    assert paused.thin() == 2
    assert len(checks_of(sqlite_engine, "alpha")) == 2
    with Session(sqlite_engine) as session:
        store.add_check(session, {"source_id": "alpha", "url": "u", "outcome": "unchanged",
                                  "started_at": long_ago + timedelta(minutes=1)})
        session.commit()
    rewrite(paused.path, "defaults:\n  keep_checks: null\n" + paused.path.read_text()
            .replace("defaults:\n", ""))
    assert paused.reload() is True
    assert paused.thin() == 0
    assert len(checks_of(sqlite_engine, "alpha")) == 3


def test_a_new_source_is_checked_within_seconds(tmp_path: Path, site: Site,
                                                sqlite_engine: Engine) -> None:
    site.set("/alpha", PAGE)
    path = tmp_path / "watchlist.yaml"
    path.write_text(watchlist_text(site, "alpha"))
    service = Service(path, sqlite_engine, worker="test")
    service.start()
    try:
        checks = poll(lambda: checks_of(sqlite_engine, "alpha"), timeout=15)
    finally:
        service.stop()
    assert [check.outcome for check in checks] == ["baseline"]


def checks_of(engine: Engine, source_id: str) -> list[store.Check]:
    with Session(engine) as session:
        return list(session.exec(select(store.Check).where(store.Check.source_id == source_id)))


def poll(probe: Callable[[], T], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while not (result := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


# --- a real `commitment-monitor run` process ------------------------------------------------


@pytest.fixture
def daemons() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def test_sigterm_mid_check_finishes_the_check_and_exits_0(
        tmp_path: Path, site: Site, sqlite_url: str, daemons: list[ServiceProcess]) -> None:
    site.set("/alpha", Response(PAGE, delay=1.5))
    path = tmp_path / "watchlist.yaml"
    path.write_text(watchlist_text(site, "alpha", every="2s"))
    daemon = ServiceProcess(path, sqlite_url, tmp_path)
    daemons.append(daemon)
    assert poll(lambda: site.hits("/alpha") >= 1, timeout=20), "\n".join(daemon.lines)

    assert daemon.terminate() == 0, "\n".join(daemon.lines)

    engine = store.make_engine(sqlite_url)
    assert [check.outcome for check in checks_of(engine, "alpha")] == ["baseline"]
    engine.dispose()
    assert site.hits("/alpha") == 1  # nothing new started after SIGTERM
    assert any("letting the checks in flight finish" in line for line in daemon.lines)


def test_a_restart_does_not_recheck_a_source_checked_a_moment_ago(
        tmp_path: Path, site: Site, sqlite_url: str, daemons: list[ServiceProcess]) -> None:
    site.set("/alpha", PAGE)
    path = tmp_path / "watchlist.yaml"
    path.write_text(watchlist_text(site, "alpha", every="1h"))
    first = ServiceProcess(path, sqlite_url, tmp_path)
    daemons.append(first)
    first.wait_for_line(r"source=alpha outcome=baseline")
    assert first.terminate() == 0

    second = ServiceProcess(path, sqlite_url, tmp_path)
    daemons.append(second)
    planned = second.wait_for_line(r"next check of alpha at (\S+ \S+) UTC")
    assert second.terminate() == 0

    next_check = datetime.fromisoformat(planned.group(1)).replace(tzinfo=UTC)
    assert next_check - store.utcnow() > timedelta(minutes=55)
    assert site.hits("/alpha") == 1


def test_run_refuses_a_broken_watchlist_with_exit_2(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text("sources:\n  - id: x\n    url: nowhere\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "monitor", "--watchlist", str(path),
                           "--database", sqlite_url, "run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{path}:3: source 'x' url: bad URL 'nowhere'" in done.stderr
