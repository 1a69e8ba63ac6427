"""/metrics and /healthz over loopback: real checks against the local site counted and scraped,
health failing when the scheduler stops beating or the store stops answering."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import Response, drop_postgres
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from monitor import notify, ops, pipeline, store
from monitor.watchlist import Commitment, Defaults, Source, Watchlist

PROMISE = "We will never allow our models to be used for military purposes."
HEDGED = "We may allow our models to be used for military purposes where feasible."
FILLER = "".join(f"<p>Paragraph {i} explains how customers reach support in region {i}.</p>"
                 for i in range(8))


def policy_page(sentence: str) -> str:
    return (f"<html><body><main><h1>Usage policy</h1><p>{sentence}</p>{FILLER}</main>"
            "</body></html>")


@pytest.fixture
def endpoints(engine: Engine) -> Iterator[str]:
    server = ops.serve(engine, port=0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def beating(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's heartbeat, as its periodic job leaves it."""
    monkeypatch.setattr(ops, "_last_beat", None)
    ops.heartbeat()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((f"commitment_monitor_{name}", tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_real_checks_changes_failures_and_deliveries(engine, endpoints, site,
                                                                   smtp) -> None:
    site.set("/policy", [Response(policy_page(PROMISE)), Response(policy_page(HEDGED))])
    site.set("/gone", "no such page", status=404)
    sources = (
        Source(id="acme", company="Acme", title="Usage", url=site.url("/policy"),
               commitments=(Commitment(id="no-military", title="No military use",
                                       quote=PROMISE[:-1]),)),
        Source(id="broken", company="Acme", title="Gone", url=site.url("/gone")),
    )
    watchlist = Watchlist(defaults=Defaults(notify=("team",), host_gap=0.001, timeout=2),
                          channels={"team": (smtp.apprise_url(),)}, sources=sources)
    clock = iter(datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=6 * i) for i in range(100))
    before = scrape(endpoints)

    pipeline.check_all(watchlist, engine=engine, now=lambda: next(clock), worker="test")
    pipeline.check_all(watchlist, engine=engine, now=lambda: next(clock), worker="test")
    notify.deliver_pending(engine, watchlist, worker="test")
    after = scrape(endpoints)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("checks_total", outcome="baseline") == 1
    assert delta("checks_total", outcome="changed") == 1
    assert delta("checks_total", outcome="failed") == 2
    assert delta("check_failures_total", kind="http_status") == 2
    assert delta("changes_total", status="weakened") == 1
    assert delta("deliveries_total", status="sent") == 1
    assert delta("check_duration_seconds_count") == 4
    assert len(smtp.mailbox.messages) == 1


def test_skipped_check_is_counted_but_not_timed() -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(f"commitment_monitor_{name}", labels) or 0.0

    skipped = pipeline.CheckSummary("acme", "skipped", 0, "being checked by another worker", 0)
    checks, timed = sample("checks_total", outcome="skipped"), sample(
        "check_duration_seconds_count")

    ops.observe_check(skipped)

    assert sample("checks_total", outcome="skipped") == checks + 1
    assert sample("check_duration_seconds_count") == timed


@pytest.mark.parametrize(("error", "kind"), [
    ("timeout: http://127.0.0.1/ did not answer within 2 s", "timeout"),
    ("database: OperationalError", "database"),
    (None, "unknown"),
    ("no kind here at all", "unknown"),
])
def test_failure_kind_is_read_from_the_summary_error(error: str | None, kind: str) -> None:
    assert ops.failure_kind(error) == kind


def test_healthz_is_200_while_the_scheduler_beats_and_the_store_answers(endpoints,
                                                                         beating) -> None:
    response = httpx.get(f"{endpoints}/healthz")

    assert response.status_code == 200
    assert response.json() == {"healthy": True, "scheduler": "ok", "store": "ok"}


def test_healthz_is_503_before_the_first_heartbeat(endpoints, monkeypatch) -> None:
    monkeypatch.setattr(ops, "_last_beat", None)

    response = httpx.get(f"{endpoints}/healthz")

    assert response.status_code == 503
    assert response.json()["scheduler"].startswith("no heartbeat yet")


def test_healthz_is_503_when_the_heartbeat_is_stale(endpoints, monkeypatch) -> None:
    monkeypatch.setattr(ops, "_last_beat", time.monotonic() - ops.STALE_AFTER - 5)

    response = httpx.get(f"{endpoints}/healthz")

    assert response.status_code == 503
    assert response.json()["scheduler"].startswith("stale: last heartbeat")
    assert response.json()["store"] == "ok"


def test_healthz_is_503_when_the_store_is_gone(database_url, tmp_path: Path, beating) -> None:
    engine = store.make_engine(database_url)
    store.create_schema(engine)
    server = ops.serve(engine, port=0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        engine.dispose()
        if database_url.startswith("sqlite"):
            shutil.rmtree(tmp_path)  # its directory gone: SQLite cannot open the file again
        else:
            drop_postgres(database_url)

        response = httpx.get(f"{base}/healthz")

        assert response.status_code == 503
        assert response.json()["store"].startswith("error: OperationalError")
        assert "postgres@" not in response.text and "monitor.db" not in response.text
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()


def test_probe_exits_0_when_healthy_and_1_when_not(endpoints, monkeypatch, capsys) -> None:
    port = int(endpoints.rsplit(":", 1)[1])
    ops.heartbeat()
    assert ops.probe(port) == 0

    monkeypatch.setattr(ops, "_last_beat", None)
    assert ops.probe(port) == 1
    assert "no heartbeat yet" in capsys.readouterr().err


def test_probe_exits_1_when_nothing_listens(capsys) -> None:
    assert ops.probe(free_port(), timeout=2) == 1
    assert "Connection refused" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@pytest.mark.slow
def test_run_with_metrics_port_turns_healthy_and_counts_its_checks(site, sqlite_url,
                                                                    tmp_path: Path) -> None:
    site.set("/policy", policy_page(PROMISE))
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(f"""defaults:
  every: 1s
  host_gap: 0.01s
sources:
  - id: acme
    company: Acme
    title: Usage
    url: {site.url('/policy')}
""")
    port = free_port()
    log = tmp_path / "run.log"
    service = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--watchlist", str(watchlist), "--database",
         sqlite_url, "run", "--metrics-port", str(port)],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"})
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        deadline = time.monotonic() + 30
        while not healthy() and time.monotonic() < deadline and service.poll() is None:
            time.sleep(0.1)
        assert healthy(), log.read_text()
        assert value(scrape(base), "checks_total", outcome="baseline") == 1
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
