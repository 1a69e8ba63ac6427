"""Three real `commitment-monitor run` processes against one fresh PostgreSQL database, checking
changing pages on the local site every second and mailing alerts to the local SMTP server.

They start together on an empty database (the migration lock), share the sources (the lease),
share the outbox (the conditional claim), and one of them is killed with SIGKILL while it holds
a lease: the others must take its sources over once that lease expires.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import Response, drop_postgres, fresh_postgres_url, postgres_available
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor import migrations, pipeline, store
from monitor.store import Alert, Check, Delivery, SourceState

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SOURCES = ("alpha", "beta", "gamma", "delta")
REPLICAS = 3
TIMEOUT = 1.0  # the watchlist's; a lease lasts max(pipeline.LEASE_MIN, 10 x TIMEOUT) = 30 s
LATENCY = 0.2  # each page answer is this slow, so overlapping fetches would be caught in flight
PATIENCE = 30.0  # seconds allowed for each step below on a loaded 2-core machine
SOAK = float(os.environ.get("REPLICA_SOAK_SECONDS", "0"))
"""Extra seconds the two survivors keep working before the checks, to hunt rarer races:
REPLICA_SOAK_SECONDS=300 .venv/bin/python -m pytest tests/test_replicas.py"""


class ChangingPages:
    """Serves /<source>: a policy page whose deadline grows by a day every second fetch, so
    checks keep finding weakened commitments. Counts fetches of one path in flight at once."""

    def __init__(self) -> None:
        self.frozen = False  # True: every page stays at its current version
        self.fetches: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, handler: BaseHTTPRequestHandler) -> Response:
        path = handler.path.split("?")[0]
        with self._lock:
            if not self.frozen:
                self.fetches[path] += 1
            version = self.fetches[path] // 2
            self.in_flight[path] += 1
            if self.in_flight[path] > 1:
                self.overlaps.append(path)
        time.sleep(LATENCY)  # the page's own latency, not a wait for the test
        with self._lock:
            self.in_flight[path] -= 1
        return Response(f"""<html><body><main><h1>Data policy {path}</h1>
<p>We will delete personal data within {30 + version} days of a request.</p>
<p>We will publish a transparency report every {6 + version} months.</p>
<p>This page explains how customers reach support and what the service offers.</p>
</main></body></html>""")


def watchlist_yaml(site, smtp) -> str:
    sources = "".join(f"""
  - id: {name}
    company: Replica Test
    title: Data policy {name}
    url: {site.url('/' + name)}
    discover: true
""" for name in SOURCES)
    return f"""defaults:
  every: 1s
  jitter: 0
  timeout: {TIMEOUT}s
  host_gap: 0.01s
  failures_before_alert: 1000
  notify: [mail]
channels:
  mail:
    - {smtp.apprise_url()}
sources:{sources}"""


class Replica:
    def __init__(self, index: int, watchlist: Path, database_url: str, logs: Path) -> None:
        self.log = logs / f"replica-{index}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--watchlist", str(watchlist),
             "--database", database_url, "run"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
        self.worker = f"{socket.gethostname()}:{self.process.pid}"  # notify.WORKER in that process
        self.terminated = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive() and not self.terminated:
            self.terminated = True  # once: a second SIGTERM could land in interpreter shutdown
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def database() -> Iterator[str]:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    url = fresh_postgres_url()
    yield url
    drop_postgres(url)


def poll(condition, timeout: float, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    return condition()


def kill_holding_a_lease(victim: Replica, engine: Engine) -> dict[str, datetime]:
    """When the victim seems to hold a lease, freeze it and look again; if it does, SIGKILL it
    and return its leases, else let it run on. (Frozen, it cannot release the lease between
    our look and the kill.)"""
    if not leases_held_by(engine, victim.worker):
        return {}
    victim.process.send_signal(signal.SIGSTOP)
    wait_until_stopped(victim.process.pid)
    held = leases_held_by(engine, victim.worker)
    if held:
        victim.process.kill()
        victim.process.wait()
    else:
        victim.process.send_signal(signal.SIGCONT)
    return held


def wait_until_stopped(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP is asynchronous: on another core the process may run on (and release a lease)
    for a moment after the signal is sent. Wait until the kernel reports it stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.001)


def kill_one_holding_a_lease(replicas: list[Replica], engine: Engine
                             ) -> tuple[Replica, dict[str, datetime]] | None:
    for replica in replicas:
        held = kill_holding_a_lease(replica, engine)
        if held:
            return replica, held
    return None


def leases_held_by(engine: Engine, worker: str) -> dict[str, datetime]:
    with Session(engine) as s:
        states = s.exec(select(SourceState).where(SourceState.lease_owner == worker))
        return {state.source_id: state.lease_expires_at for state in states}


def alerts_made(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(Alert.id)).all())


def overlapping_checks(engine: Engine) -> list[str]:
    """Pairs of checks of one source whose [start, start + duration] intervals overlap."""
    with Session(engine) as s:
        checks = s.exec(select(Check).order_by(col(Check.source_id), col(Check.started_at)))
        by_source: dict[str, list[Check]] = {}
        for check in checks:
            by_source.setdefault(check.source_id, []).append(check)
    overlaps = []
    for source_id, runs in by_source.items():
        for before, after in zip(runs, runs[1:], strict=False):
            end = before.started_at + timedelta(milliseconds=before.duration_ms)
            if after.started_at < end:
                overlaps.append(f"{source_id}: check {before.id} {before.started_at:%T.%f} "
                                f"+{before.duration_ms} ms, check {after.id} "
                                f"{after.started_at:%T.%f}")
    return overlaps


def test_replicas_share_sources_and_alerts_and_take_over_a_killed_ones_leases(
        database, site, smtp, tmp_path: Path) -> None:
    pages = ChangingPages()
    for name in SOURCES:
        site.set(f"/{name}", pages)
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(watchlist_yaml(site, smtp))
    replicas = [Replica(i, watchlist, database, tmp_path) for i in range(REPLICAS)]
    engine = store.make_engine(database)
    try:
        # All three migrate the empty database at once (in one transaction: all or nothing)...
        assert poll(lambda: migrations.current_revision(engine), timeout=PATIENCE), \
            "no replica migrated the database; one's log:\n" + replicas[0].log.read_text()[-3000:]
        # ...then share the work: the first replica seen holding a lease is killed. (Which one
        # checks is a race each interval, and a replica whose schedule runs a little behind the
        # others may lose it every time: a run is skipped when another just checked the source.)
        found = poll(lambda: kill_one_holding_a_lease(replicas, engine), timeout=PATIENCE,
                     every=0.02)
        assert found, "no replica held a lease:\n" + replicas[0].log.read_text()[-3000:]
        victim, held = found
        killed_at = store.utcnow()

        # Its leases expire; the survivors check those sources again after that.
        expired_at = max(held.values())

        def taken_over() -> bool:
            with Session(engine) as s:
                return all(s.exec(select(Check).where(Check.source_id == source_id,
                                                      Check.started_at > expired_at)).first()
                           for source_id in held)

        assert poll(taken_over, timeout=pipeline.LEASE_MIN.total_seconds() + PATIENCE), \
            f"sources {sorted(held)} were not checked again after the lease expired"
        with Session(engine) as s:
            meanwhile = s.exec(select(Check).where(col(Check.source_id).in_(held),
                                                   Check.started_at > killed_at,
                                                   Check.started_at < expired_at)).all()
        assert meanwhile == [], "a source was checked while a dead replica's lease still held it"
        survivors = [replica for replica in replicas if replica is not victim]
        assert all(replica.alive() for replica in survivors)
        time.sleep(SOAK)  # a soak run's working time, not a wait for a result (0 by default)
        assert all(replica.alive() for replica in survivors)
        # Pages stop changing; once every source was checked since, no alert can be added, and
        # the outbox (polled every 5 s) empties.
        pages.frozen, frozen_at = True, store.utcnow()
        assert poll(lambda: settled(engine, frozen_at, victim.worker), timeout=PATIENCE), \
            f"deliveries still pending: {pending_deliveries(engine, victim.worker)}"
        for replica in survivors:
            replica.terminate()
        for replica in survivors:
            assert replica.stop() == 0, replica.log.read_text()[-3000:]

        assert pages.overlaps == [], "two replicas fetched the same page at the same time"
        assert overlapping_checks(engine) == []
        assert_every_alert_mailed_once(engine, smtp, victim.worker)
    finally:
        for replica in replicas:
            replica.stop()
        engine.dispose()


def settled(engine: Engine, since: datetime, victim: str) -> bool:
    with Session(engine) as s:
        checked = {check.source_id for check in s.exec(select(Check).where(
            Check.started_at > since, Check.outcome == "unchanged"))}
    return checked == set(SOURCES) and not pending_deliveries(engine, victim)


def pending_deliveries(engine: Engine, victim: str) -> list[Delivery]:
    """Deliveries not yet sent, leaving out those the victim claimed and died holding (they are
    retried after notify.STALE_CLAIM, long after this test)."""
    with Session(engine) as s:
        return list(s.exec(select(Delivery).where(
            col(Delivery.status) != "sent",
            ~((col(Delivery.status) == "sending") & (col(Delivery.claimed_by) == victim)))))


def assert_every_alert_mailed_once(engine: Engine, smtp, victim: str) -> None:
    bodies = [message.get_body(("plain",)).get_content() for message in smtp.mailbox.messages]
    duplicates = [body[:200] for body, n in Counter(bodies).items() if n > 1]
    assert duplicates == [], "an alert was mailed twice"
    with Session(engine) as s:
        alerts = s.exec(select(Alert).where(Alert.kind == "changes")).all()
        sent = s.exec(select(Delivery).where(Delivery.status == "sent")).all()
        stranded = s.exec(select(Delivery).where(Delivery.status == "sending",
                                                 Delivery.claimed_by == victim)).all()
    assert len(alerts) >= 2 * len(SOURCES), "the pages changed but few alerts were made"
    assert len(sent) + len(stranded) == len(alerts)
    assert len(smtp.mailbox.messages) == len(sent)

