"""Operations endpoints: Prometheus ``/metrics`` and ``/healthz``, on a port that is off unless
``run --metrics-port`` (or MONITOR_METRICS_PORT) asks for it.

The counters live in this process (each replica exports its own; sum them in PromQL). The
pipeline, the outbox and the scheduler report to them through the ``observe_*`` functions and
``heartbeat()``, which cost a few attribute updates and never touch the network or the store.

``/healthz`` answers 200 only while the scheduler is alive (its periodic job beat recently) AND
the store answers a query; otherwise 503, saying which part failed, so a container orchestrator
restarts a wedged process instead of letting it sit silent for months.
``python -m monitor.ops`` is that probe for Docker's HEALTHCHECK (no curl in a slim image).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from sqlalchemy import text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from monitor.notify import DeliveryReport
    from monitor.pipeline import CheckSummary

NAMESPACE = "commitment_monitor"
PORT_ENV = "MONITOR_METRICS_PORT"
STALE_AFTER = 180.0
"""Seconds without a heartbeat before /healthz fails. The scheduler's delivery job beats every
few seconds; it waits for a free worker thread, so a long check delays it, but 3 minutes of
silence means every worker is stuck."""

CHECKS = Counter("checks", "Checks of a source, by outcome.", ["outcome"], namespace=NAMESPACE)
CHECK_FAILURES = Counter("check_failures", "Failed checks, by error kind (timeout, http_status, "
                         "bot_challenge, ...).", ["kind"], namespace=NAMESPACE)
CHANGES = Counter("changes", "Commitment changes detected, by status.", ["status"],
                  namespace=NAMESPACE)
DELIVERIES = Counter("deliveries", "Alert deliveries, by result.", ["status"],
                     namespace=NAMESPACE)
CHECK_DURATION = Histogram("check_duration_seconds", "Wall time of one check, fetch to commit.",
                           namespace=NAMESPACE,
                           buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
HEARTBEAT = Gauge("scheduler_heartbeat_timestamp_seconds", "When the scheduler last ran its "
                  "periodic job (Unix time).", namespace=NAMESPACE)

_last_beat: float | None = None  # time.monotonic() of the last heartbeat


# --- What the service reports ------------------------------------------------------------------


def observe_check(summary: CheckSummary) -> None:
    """Count one check; a skipped one (another replica held the lease) took no time to measure."""
    CHECKS.labels(summary.outcome).inc()
    if summary.outcome == "skipped":
        return
    CHECK_DURATION.observe(summary.duration_ms / 1000)
    if summary.outcome == "failed":
        CHECK_FAILURES.labels(failure_kind(summary.error)).inc()


def failure_kind(error: str | None) -> str:
    """The kind in a CheckSummary error, which reads "kind: message"."""
    kind = (error or "").split(":", 1)[0].strip()
    return kind if kind.isidentifier() else "unknown"


def observe_changes(statuses: Iterable[str]) -> None:
    for status in statuses:
        CHANGES.labels(status).inc()


def observe_deliveries(report: DeliveryReport) -> None:
    for status, count in (("sent", report.sent), ("failed", report.failed),
                          ("expired", report.expired)):
        if count:
            DELIVERIES.labels(status).inc(count)


def heartbeat() -> None:
    """The scheduler is alive: called from its periodic job."""
    global _last_beat
    _last_beat = time.monotonic()
    HEARTBEAT.set_to_current_time()


# --- /healthz ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    healthy: bool
    scheduler: str
    store: str

    def body(self) -> bytes:
        return json.dumps({"healthy": self.healthy, "scheduler": self.scheduler,
                           "store": self.store}).encode()


def health(engine: Engine) -> Health:
    scheduler = _scheduler_health()
    store = _store_health(engine)
    return Health(scheduler == "ok" and store == "ok", scheduler, store)


def _scheduler_health() -> str:
    if _last_beat is None:
        return "no heartbeat yet: the scheduler has not run its periodic job"
    age = time.monotonic() - _last_beat
    if age > STALE_AFTER:
        return f"stale: last heartbeat {age:.0f} s ago (limit {STALE_AFTER:.0f} s)"
    return "ok"


def _store_health(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means unhealthy; the class name leaks no secret
        return f"error: {exc.__class__.__name__}"
    return "ok"


# --- The HTTP server ---------------------------------------------------------------------------


def app(engine: Engine) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: /healthz here, everything else is prometheus_client's /metrics."""
    metrics = make_wsgi_app()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        result = health(engine)
        status = "200 OK" if result.healthy else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"),
                                ("Cache-Control", "no-store")])
        return [result.body()]

    return dispatch


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass  # a scrape every 15 s would flood the service log


def serve(engine: Engine, port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Start the endpoints in a daemon thread; call ``shutdown()`` on the result to stop."""
    server = make_server(host, port, app(engine), server_class=_Server,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="ops-http", daemon=True).start()
    return server


# --- The container's probe ---------------------------------------------------------------------


def probe(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> int:
    """Ask /healthz; 0 when healthy, 1 otherwise (printing why), as Docker's HEALTHCHECK wants."""
    url = f"http://{host}:{port}/healthz"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with direct.open(url, timeout=timeout) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    port = os.environ.get(PORT_ENV)
    if not port:
        sys.exit(f"{PORT_ENV} is not set: run the service with --metrics-port for /healthz")
    sys.exit(probe(int(port)))
