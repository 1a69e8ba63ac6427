"""What the reliability tests and bench/reliability.py share: a raw socket server for HTTP faults
well-formed responses cannot express, a mail server slow to say "250", policy pages that gain a
commitment over time, the real `run` process, and the SIGKILL-and-restart loop with its ledger.

Everything listens on 127.0.0.1. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from aiosmtpd.controller import Controller
from conftest import Mailbox, Response, Site, Smtp
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor import notify, store
from monitor.store import Alert, Change, Delivery, SourceState, Version
from monitor.watchlist import load

REPO = Path(__file__).resolve().parents[1]


# --- HTTP faults below the level of a well-formed response -------------------------------------


RawRoute = Callable[[socketserver.StreamRequestHandler], None]


class RawSite:
    """A socket server on 127.0.0.1 whose routes write the response bytes by hand."""

    def __init__(self) -> None:
        self.routes: dict[str, RawRoute] = {}
        routes = self.routes

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode("latin-1")
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path = request_line.split(" ")[1] if " " in request_line else "/"
                with contextlib.suppress(OSError):  # the client gave up, as it should
                    routes[path](self)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def truncated_body(handler: socketserver.StreamRequestHandler) -> None:
    """Promises 10,000 bytes, sends a few, hangs up."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 10000\r\n\r\n<html><body><main><p>We will")


def slow_drip(handler: socketserver.StreamRequestHandler, *, seconds: float = 10) -> None:
    """A valid response trickling in a few bytes at a time, far slower than any timeout."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 1000000\r\n\r\n<html><body><main>")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        handler.wfile.write(b"<p>.</p>")
        handler.wfile.flush()
        time.sleep(0.02)


# --- Mail --------------------------------------------------------------------------------------


class SlowMailbox(Mailbox):
    """Stores each message at once but answers "250" only ``accept_delay`` seconds later, so the
    window between the server accepting a message and the sender recording it is wide enough
    for a SIGKILL to land in."""

    def __init__(self, accept_delay: float) -> None:
        super().__init__()
        self.accept_delay = accept_delay

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.accept_delay)
        return reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[Smtp]:
    """An aiosmtpd server on 127.0.0.1 collecting into ``mailbox``."""
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield Smtp("127.0.0.1", controller.server.sockets[0].getsockname()[1], mailbox)
    finally:
        controller.stop()


# --- Pages that gain a commitment over time ----------------------------------------------------

MARKER = re.compile(r"\bM(\d+)G(\d{4})\b")
VERBS = ("audit", "evaluate", "publish", "review", "disclose", "verify", "report", "document")
FILLER = "\n".join(f"<p>Paragraph {i} explains how customers reach support and what the service "
                   f"offers in region {i}.</p>" for i in range(6))


def marker(page: int, generation: int) -> str:
    return f"M{page}G{generation:04d}"


def commitment(page: int, generation: int) -> str:
    """The sentence generation ``generation`` of a page adds; its marker identifies it in the
    store and in every message."""
    verb = VERBS[generation % len(VERBS)]
    return (f"We will {verb} safety record {marker(page, generation)} before every release of "
            f"model family {generation}.")


def policy_html(page: int, generation: int) -> str:
    sentences = "\n".join(f"<p>{commitment(page, g)}</p>" for g in range(generation + 1))
    return (f"<html><head><title>Policy {page}</title></head><body><nav>Home</nav><main>"
            f"<h1>Safety Policy {page}</h1>\n{FILLER}\n{sentences}\n</main></body></html>")


class GrowingPolicies:
    """``pages`` policy pages on a Site; each gains one commitment every ``period`` seconds
    until frozen."""

    def __init__(self, site: Site, pages: int, period: float) -> None:
        self.site = site
        self.pages = pages
        self.period = period
        self.started = time.monotonic()
        self.frozen: float | None = None
        for page in range(pages):
            site.set(self.path(page), self._route(page))

    @staticmethod
    def path(page: int) -> str:
        return f"/policy-{page}"

    def generation(self) -> int:
        now = self.frozen if self.frozen is not None else time.monotonic()
        return int((now - self.started) / self.period)

    def freeze(self) -> int:
        """Stop the pages changing; returns the generation they stay at."""
        self.frozen = time.monotonic()
        return self.generation()

    def _route(self, page: int) -> Callable[[BaseHTTPRequestHandler], Response]:
        def serve(_handler: BaseHTTPRequestHandler) -> Response:
            return Response(policy_html(page, self.generation()))
        return serve


def watchlist_yaml(site: Site, smtp: Smtp, pages: int, channels: tuple[str, ...]) -> str:
    """Every source checked every second, each channel one mailbox on the local server."""
    lines = ["defaults:", "  every: 1s", "  jitter: 0", "  host_gap: 0.001", "  timeout: 5s",
             f"  notify: [{', '.join(channels)}]", "channels:"]
    lines += [f"  {name}:\n    - \"{smtp.apprise_url(to=f'{name}@example.org')}\""
              for name in channels]
    lines.append("sources:")
    for page in range(pages):
        lines += [f"  - id: lab-{page}", f"    company: Lab {page}",
                  f"    title: Safety Policy {page}",
                  f"    url: {site.url(GrowingPolicies.path(page))}",
                  "    select: main", "    discover: true"]
    return "\n".join(lines) + "\n"


# --- The real service --------------------------------------------------------------------------


class ServiceProcess:
    """`python -m monitor run` in its own process; its stderr collected line by line."""

    def __init__(self, watchlist: Path, database: str, workdir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in ("DATABASE_URL", "MONITOR_WATCHLIST", "MONITOR_METRICS_PORT"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--watchlist", str(watchlist), "--database",
             database, "run"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.worker = f"{socket.gethostname()}:{self.process.pid}"  # notify.WORKER in that process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def started(self) -> bool:
        return any(line.startswith("watching ") for line in list(self.lines))

    def wait_started(self, timeout: float = 60) -> None:
        """Until the service says it is watching; RuntimeError with its log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.started:
                return
            if self.process.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"the service did not start (exit {self.process.returncode}):\n"
                           + self.log())

    def wait_for_line(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first log line matching ``pattern``; AssertionError with the log if none comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; log:\n" + self.log())

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code


# --- Kill, restart, account --------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """What one SIGKILL interrupted, read from the store once the process was dead."""

    after: float               # seconds after "watching", or after spawning for a start-up kill
    startup: bool              # aimed at start-up (imports, migrations), "watching" or not
    mid_check: tuple[str, ...]  # sources whose lease the dead process still held
    mid_send: tuple[int, ...]   # deliveries it had claimed and not recorded
    accepted: tuple[int, ...]   # of those, ones the mail server had already stored


@dataclass
class CrashReport:
    seed: int
    sources: int
    channels: int
    kills: list[Kill] = field(default_factory=list)
    changes: int = 0           # Change rows
    expected: int = 0          # commitments added by a persisted page edit
    deliveries: int = 0        # (alert, channel) pairs of commitment alerts
    emails: int = 0
    lost_changes: int = 0      # a persisted edit with no Change row
    duplicated_changes: int = 0  # one edit recorded as more than one Change
    lost_emails: int = 0       # a delivery no message arrived for
    duplicated: int = 0        # messages beyond the first for one delivery
    unexplained: int = 0       # duplicates of deliveries no kill interrupted after acceptance
    false_alarms: int = 0      # Change rows that are not 'added' (e.g. a 'removed')
    stray: int = 0             # messages matching no delivery
    undelivered: int = 0       # deliveries not 'sent' after the drain
    final_exit: int | None = None
    seconds: float = 0.0

    @property
    def window_hits(self) -> int:
        return sum(len(kill.accepted) for kill in self.kills)

    @property
    def startup(self) -> int:
        return sum(kill.startup for kill in self.kills)

    @property
    def mid_check(self) -> int:
        return sum(bool(kill.mid_check) for kill in self.kills)

    @property
    def mid_send(self) -> int:
        return sum(bool(kill.mid_send) for kill in self.kills)

    def problems(self) -> list[str]:
        """Every way the run broke the guarantee (docs/guarantees.md); empty when it held."""
        found = [f"{name}={value}" for name, value in (
            ("lost_changes", self.lost_changes), ("lost_emails", self.lost_emails),
            ("duplicated_changes", self.duplicated_changes),
            ("unexplained_duplicates", self.unexplained), ("false_alarms", self.false_alarms),
            ("stray_emails", self.stray), ("undelivered", self.undelivered)) if value]
        if self.duplicated != self.window_hits:
            found.append(f"duplicated={self.duplicated} but {self.window_hits} kills landed "
                         "between the server's acceptance and the 'sent' mark")
        if self.final_exit != 0:
            found.append(f"final run exited {self.final_exit}")
        return found


CHANNELS = ("first", "second")
KILL_WINDOW = (0.05, 8.0)
"""When a kill lands, in seconds after the service says it is watching: its first checks start
1 s in, the outbox is first polled 5 s in (scheduler.DELIVER_EVERY)."""
STARTUP_EVERY = 4
STARTUP_WINDOW = (0.3, 3.0)
"""Every 4th kill, the first one included (a fresh database: inside its migration, with luck),
lands this many seconds after the process was spawned, whether or not it is watching yet."""


def crash_run(workdir: Path, *, seed: int, iterations: int, budget: float,
              database: str | None = None, pages: int = 3, period: float = 1.5,
              accept_delay: float = 0.25, settle_timeout: float = 90) -> CrashReport:
    """SIGKILL the real service at seeded random points, restart it on the same database (a
    fresh SQLite file in ``workdir`` unless ``database`` names another, e.g. PostgreSQL), then
    let a last run finish cleanly (SIGTERM), drain the outbox, and account for every
    commitment the pages gained against the store and the mailbox."""
    rng = random.Random(seed)
    report = CrashReport(seed=seed, sources=pages, channels=len(CHANNELS))
    started = time.monotonic()
    site, mailbox = Site(), SlowMailbox(accept_delay)
    database = database or f"sqlite:///{workdir}/monitor.db"
    engine: Engine | None = None
    try:
        with smtp_server(mailbox) as smtp:
            policies = GrowingPolicies(site, pages, period)
            path = workdir / "watchlist.yaml"
            path.write_text(watchlist_yaml(site, smtp, pages, CHANNELS))
            while len(report.kills) < iterations and time.monotonic() - started < budget:
                startup = len(report.kills) % STARTUP_EVERY == 0
                service = ServiceProcess(path, database, workdir)
                if not startup:
                    service.wait_started()
                after = rng.uniform(*(STARTUP_WINDOW if startup else KILL_WINDOW))
                time.sleep(after)  # the kill point itself, not a wait for work
                if engine is None and service.started:
                    engine = store.make_engine(database)
                report.kills.append(kill_and_inspect(service, engine, mailbox, after, startup))
            policies.freeze()
            final = ServiceProcess(path, database, workdir)
            final.wait_started()
            engine = engine or store.make_engine(database)
            settled = wait_settled(engine, policies, final.worker, settle_timeout)
            report.final_exit = final.terminate()
            if not settled:
                raise RuntimeError("the final run did not catch up with the pages within "
                                   f"{settle_timeout} s:\n{final.log()}")
            later = store.utcnow() + notify.STALE_CLAIM + timedelta(minutes=1)
            notify.deliver_pending(engine, load(path), worker="drain", now=lambda: later)
            account(report, engine, mailbox)
    finally:
        site.close()
        if engine is not None:
            engine.dispose()
    report.seconds = time.monotonic() - started
    return report


def kill_and_inspect(service: ServiceProcess, engine: Engine | None, mailbox: Mailbox,
                     after: float, startup: bool) -> Kill:
    service.kill()
    settle_mailbox(mailbox)  # what the server received before the kill, it stores now
    if engine is None:  # killed before the first start completed: nothing ran yet
        return Kill(round(after, 3), startup, (), (), ())
    with store.session(engine) as s:
        leased = s.exec(select(SourceState.source_id)
                        .where(col(SourceState.lease_owner) == service.worker)).all()
        claimed = s.exec(select(Delivery).where(col(Delivery.claimed_by) == service.worker,
                                                col(Delivery.status) == "sending")).all()
        arrived = Counter(message_key(m) for m in mailbox.messages)
        accepted = [d.id or 0 for d in claimed if arrived[delivery_key(s, d)]]
    return Kill(round(after, 3), startup, tuple(sorted(leased)),
                tuple(d.id or 0 for d in claimed), tuple(accepted))


def settle_mailbox(mailbox: Mailbox, quiet: float = 0.4, timeout: float = 5) -> None:
    """Until no message has arrived for ``quiet`` seconds (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    count, since = len(mailbox.messages), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.02)
        if len(mailbox.messages) != count:
            count, since = len(mailbox.messages), time.monotonic()


def wait_settled(engine: Engine, policies: GrowingPolicies, worker: str,
                 timeout: float) -> bool:
    """Until every page's last generation is stored and the live process has nothing left to
    send (claims of killed processes stay 'sending' until they go stale: the drain's job)."""
    final = policies.generation()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session(engine) as s:
            current = [s.get(Version, state.version_id) if state.version_id else None
                       for state in s.exec(select(SourceState))]
            texts = [version.text for version in current if version is not None]
            stored = all(marker(page, final) in " ".join(texts)
                         for page in range(policies.pages))
            busy = s.exec(select(Delivery.id).where(
                (col(Delivery.status) == "pending")
                | ((col(Delivery.status) == "sending") & (col(Delivery.claimed_by) == worker))
            )).first()
        if stored and busy is None:
            return True
        time.sleep(0.2)
    return False


def message_key(message: EmailMessage) -> tuple[str, frozenset[str]]:
    """(recipient, markers in the text) identifies which delivery a message was."""
    text = message.get_body(("plain",)).get_content()
    return str(message["To"]).split("@")[0], frozenset(m.group(0) for m in MARKER.finditer(text))


def delivery_key(s: Session, delivery: Delivery) -> tuple[str, frozenset[str]]:
    changes = s.exec(select(Change.after).where(Change.alert_id == delivery.alert_id)).all()
    return delivery.channel, frozenset(m.group(0) for text in changes
                                       for m in MARKER.finditer(text or ""))


def account(report: CrashReport, engine: Engine, mailbox: Mailbox) -> None:
    """Compare what the pages gained, what the store recorded and what the mailbox received."""
    window = {delivery_id for kill in report.kills for delivery_id in kill.accepted}
    with store.session(engine) as s:
        expected: set[str] = set()
        for state in s.exec(select(SourceState)):
            versions = s.exec(select(Version.text).where(Version.source_id == state.source_id)
                              .order_by(col(Version.id))).all()
            if versions:
                expected |= markers(versions[-1]) - markers(versions[0])
        changes = s.exec(select(Change)).all()
        recorded = Counter(m for change in changes for m in markers(change.after or ""))
        deliveries = s.exec(select(Delivery).join(Alert, col(Alert.id) == col(Delivery.alert_id))
                            .where(col(Alert.kind) == "changes")).all()
        wanted = {d.id: delivery_key(s, d) for d in deliveries}
        report.undelivered = sum(d.status != "sent" for d in s.exec(select(Delivery)))
    arrived = Counter(message_key(m) for m in mailbox.messages)
    report.changes, report.expected = len(changes), len(expected)
    report.deliveries, report.emails = len(wanted), len(mailbox.messages)
    report.false_alarms = sum(change.status != "added" for change in changes)
    report.lost_changes = len(expected - recorded.keys())
    report.duplicated_changes = sum(n - 1 for n in recorded.values())
    for delivery_id, key in wanted.items():
        received = arrived.get(key, 0)
        report.lost_emails += received == 0
        report.duplicated += max(0, received - 1)
        report.unexplained += received > 1 and delivery_id not in window
    report.stray = sum(n for key, n in arrived.items() if key not in set(wanted.values()))


def markers(text: str) -> set[str]:
    return {m.group(0) for m in MARKER.finditer(text)}
