"""`commitment-monitor demo`: replay a policy history on 127.0.0.1 and watch the real pipeline.

A local HTTP server serves, at ``/<service>/<document>``, one snapshot of each document per
*tick*. Each tick runs the real check (fetch, normalise, detect, store) against it, prints the
alerts exactly as they would be sent, and, with an SMTP address, sends them by email. Nothing
leaves the machine, so the demo is how to see the monitor work without internet access.

The bundled history (``demo_history/northwind``) is a fictional lab's framework and usage policy,
written to show real weakening patterns and the noise that must stay quiet. ``--corpus DIR``
replays any directory laid out like the shared corpus: ``<service>/<document>/<stamp>.html|pdf``.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from monitor import notify, pipeline, store, watchlist
from monitor.errors import MonitorError

HISTORY = Path(__file__).resolve().parent / "demo_history"
DECLARATIONS = HISTORY / "sources.yaml"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
               ".pdf": "application/pdf"}
WORKER = "demo"

Echo = Callable[[str], None]


class DemoError(MonitorError):
    """The history to replay is missing or unusable."""


@dataclass(frozen=True)
class Document:
    """One replayed document: its snapshots in stamp order."""

    service: str
    name: str
    snapshots: tuple[Path, ...]

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    @property
    def source_id(self) -> str:
        """A valid watchlist id, whatever the directory names are."""
        return re.sub(r"[^a-z0-9._-]+", "-", f"{self.service}-{self.name}".lower()).strip("-._")

    def snapshot(self, tick: int) -> Path:
        """The snapshot served at ``tick``; a document with a shorter history stays on its last."""
        return self.snapshots[min(tick, len(self.snapshots) - 1)]


@dataclass
class Summary:
    """What one replay produced, counted from the store."""

    ticks: int = 0
    alerts: Counter[str] = field(default_factory=Counter)         # by alert kind
    changes: Counter[str] = field(default_factory=Counter)        # by change status
    failed_checks: Counter[str] = field(default_factory=Counter)  # by error kind
    emails_sent: int = 0
    emails_failed: int = 0

    def lines(self) -> list[str]:
        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{n} {what}" for what, n in sorted(counter.items())) or "none"
        lines = [f"replayed {self.ticks} ticks",
                 f"alerts: {counts(self.alerts)}",
                 f"commitment changes: {counts(self.changes)}",
                 f"failed checks (source health, never a removal): {counts(self.failed_checks)}"]
        if self.emails_sent or self.emails_failed:
            lines.append(f"emails: {self.emails_sent} sent, {self.emails_failed} not delivered")
        return lines


# --- The history -------------------------------------------------------------------------------


def find_documents(root: Path, only: Sequence[str] = ()) -> list[Document]:
    """Every ``<service>/<document>/`` under ``root`` holding raw snapshots (``versions/`` and
    other files are ignored), optionally only the ``service/document`` keys in ``only``."""
    if not root.is_dir():
        raise DemoError(f"{root} is not a directory; give a directory laid out as "
                        "<service>/<document>/<stamp>.html|pdf")
    documents = []
    for directory in sorted(p for p in root.glob("*/*") if p.is_dir()):
        snapshots = tuple(sorted(p for p in directory.iterdir()
                                 if p.is_file() and p.suffix.lower() in MEDIA_TYPES))
        document = Document(directory.parent.name, directory.name, snapshots)
        if snapshots and (not only or document.key in only):
            documents.append(document)
    missing = sorted(set(only) - {d.key for d in documents})
    if missing:
        raise DemoError(f"no snapshots for {', '.join(missing)} under {root}; "
                        "give --document as SERVICE/DOCUMENT of a directory holding .html or .pdf")
    if not documents:
        raise DemoError(f"no <service>/<document>/<stamp>.html|pdf snapshots under {root}")
    return documents


def load_declarations(path: Path = DECLARATIONS) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def demo_watchlist(documents: Sequence[Document], base_url: str, *,
                   smtp: tuple[str, int] | None = None) -> str:
    """The replay's watchlist: one source per document on the local server, no pause between
    requests to it, and an email channel when an SMTP server is given."""
    declared = load_declarations()
    sources = []
    for document in documents:
        entry = {"id": document.source_id, "company": document.service.capitalize(),
                 "title": document.name.replace("-", " ").capitalize(), "discover": True,
                 **declared.get(document.key, {})}
        entry["url"] = f"{base_url}/{document.key}"
        sources.append(entry)
    data: dict[str, Any] = {
        "defaults": {"host_gap": "0.01s", "timeout": "10s", "notify": []},
        "channels": {},
        "sources": sources,
    }
    if smtp is not None:
        host, port = smtp
        data["defaults"]["notify"] = ["demo-mail"]
        data["channels"]["demo-mail"] = [
            f"mailto://{host}:{port}?from=monitor@demo.invalid&to=you@demo.invalid"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


# --- The local server --------------------------------------------------------------------------


class Replay:
    """Serves each document's snapshot for the current tick at ``/<service>/<document>``."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = {f"/{d.key}": d for d in documents}
        self.tick = 0
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                replay.serve(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        document = self.documents.get(request.path.split("?")[0])
        if document is None:
            request.send_error(404)
            return
        snapshot = document.snapshot(self.tick)
        body = snapshot.read_bytes()
        request.send_response(200)
        request.send_header("Content-Type", MEDIA_TYPES[snapshot.suffix.lower()])
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- The run -----------------------------------------------------------------------------------


def run(documents: Sequence[Document], *, engine: Engine, echo: Echo = print,
        ticks: int | None = None, interval: float = 0.0,
        smtp: tuple[str, int] | None = None) -> Summary:
    """Replay ``documents`` tick by tick through the real pipeline, echoing every alert."""
    total = max(len(d.snapshots) for d in documents)
    total = min(total, ticks) if ticks else total
    by_id = {d.source_id: d for d in documents}
    start = _last_ids(engine)
    last_alert = start[0]
    summary = Summary()
    with Replay(documents) as replay:
        wl = watchlist.parse(demo_watchlist(documents, replay.base_url, smtp=smtp),
                             name="demo-watchlist.yaml", environ={})
        for tick in range(total):
            replay.tick = tick
            echo(f"--- tick {tick + 1}/{total} " + "-" * 60)
            for result in pipeline.check_all(wl, engine=engine, workers=2, worker=WORKER):
                stamp = by_id[result.source_id].snapshot(tick).stem
                echo(f"  {stamp:<20} {result.line()}{_remark(result)}")
            last_alert = _echo_alerts(engine, wl, last_alert, echo)
            if smtp is not None:
                report = notify.deliver_pending(engine, wl, worker=WORKER)
                summary.emails_sent += report.sent
                summary.emails_failed += report.failed
                if report.failed:
                    echo(f"  {report.failed} email(s) not accepted by {smtp[0]}:{smtp[1]}; is an "
                         "SMTP server listening there?")
            summary.ticks += 1
            if interval and tick + 1 < total:
                time.sleep(interval)
    _count(engine, start, summary)
    return summary


def _remark(result: pipeline.CheckSummary) -> str:
    """What a quiet outcome means, for someone watching the demo for the first time."""
    if result.outcome == "changed" and not result.changes:
        return "\n  " + " " * 20 + " -> new text, but no commitment changed: no alert"
    if result.outcome == "failed":
        return "\n  " + " " * 20 + " -> a source-health event, never a removed commitment"
    return ""


def _last_ids(engine: Engine) -> tuple[int, int]:
    """The newest Alert and Check ids before the replay, so the summary counts only this run."""
    with Session(engine) as session:
        alert = session.exec(select(func.max(store.Alert.id))).one()
        check = session.exec(select(func.max(store.Check.id))).one()
    return alert or 0, check or 0


def _echo_alerts(engine: Engine, wl: watchlist.Watchlist, after: int, echo: Echo) -> int:
    """Echo the alerts stored since ``after`` as their plain-text message; returns the last id."""
    with store.session(engine) as session:
        alerts = session.exec(select(store.Alert).where(col(store.Alert.id) > after)
                              .order_by(col(store.Alert.id))).all()
        for alert in alerts:
            message = notify.render_alert(alert, store.alert_changes(session, alert.id or 0), wl)
            echo(f"\n  >>> {message.subject}")
            echo("\n".join(f"      {line}" for line in message.text.rstrip().splitlines()) + "\n")
            after = alert.id or after
    return after


def _count(engine: Engine, start: tuple[int, int], summary: Summary) -> None:
    after_alert, after_check = start
    with Session(engine) as session:
        kinds = session.exec(select(store.Alert.kind).where(col(store.Alert.id) > after_alert))
        summary.alerts.update(kinds)
        statuses = session.exec(select(store.Change.status)
                                .join(store.Alert, col(store.Change.alert_id) == store.Alert.id)
                                .where(col(store.Alert.id) > after_alert))
        summary.changes.update(statuses)
        errors = session.exec(select(store.Check.error_kind)
                              .where(col(store.Check.id) > after_check,
                                     store.Check.outcome == "failed"))
        summary.failed_checks.update(kind or "unknown" for kind in errors)


@contextmanager
def database(url: str | None) -> Iterator[Engine]:
    """The given database, or a throwaway SQLite file that disappears with the demo."""
    with ExitStack() as stack:
        if url is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="cm-demo-"))
            url = f"sqlite:///{directory}/demo.db"
        engine = store.make_engine(url)
        stack.callback(engine.dispose)
        store.create_schema(engine)
        yield engine


def parse_smtp(value: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); raises ValueError saying what to write."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT; e.g. 127.0.0.1:1025 for a local mailpit")
    return host, int(port)
