"""Real things over loopback: an HTTP site, an SMTP server, SQLite files and PostgreSQL.

Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.engine import Engine

from monitor import store

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables would send loopback traffic elsewhere; tests talk to 127.0.0.1 only."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def rewrite(path: Path, text: str) -> None:
    """Write and move the mtime forward, as an editor saving a second later would (a file
    follower compares mtime and size, and two writes can share a filesystem timestamp)."""
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class Response:
    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0


Handler = Callable[[BaseHTTPRequestHandler], "Response | None"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-response (a size cap, a timeout, a killed service) is part
        of the tests; anything else is a fault of this server, and printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Site:
    """A threaded HTTP server on 127.0.0.1 whose routes tests set and change between checks.

    A route is a Response, a list of Responses (served in turn, the last one repeating), or a
    callable taking the request handler and returning a Response. ``requests`` logs every
    request as (method, path, headers).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Response | list[Response] | Handler] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                site._serve(self)

            def do_HEAD(self) -> None:  # noqa: N802
                site._serve(self, head=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def set(self, path: str, route: Response | list[Response] | Handler | str | bytes,
            **kwargs: object) -> str:
        """Serve ``route`` at ``path`` from now on; returns the full URL."""
        if isinstance(route, str | bytes):
            route = Response(route, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.routes[path] = list(route) if isinstance(route, list) else route
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p.split("?")[0] == path)

    def _next(self, handler: BaseHTTPRequestHandler) -> Response | None:
        path = handler.path.split("?")[0]
        with self._lock:
            self.requests.append((handler.command, handler.path, dict(handler.headers)))
            route = self.routes.get(path)
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
        if callable(route):
            return route(handler)
        return route

    def _serve(self, handler: BaseHTTPRequestHandler, head: bool = False) -> None:
        response = self._next(handler) or Response("not found", status=404,
                                                   content_type="text/plain")
        if response.delay:
            time.sleep(response.delay)
        body = response.body.encode() if isinstance(response.body, str) else response.body
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not head and response.status != 304:
            handler.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


# --- SMTP --------------------------------------------------------------------------------------


class Mailbox:
    """Collects every message the local SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.fail_next: int = 0  # answer this many DATA commands with a 451 before accepting
        self.refuse: set[str] = set()  # recipients answered "550 no such user"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 Requested action aborted: try again later"
        message = message_from_bytes(envelope.original_content or envelope.content,
                                     policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@dataclass
class Smtp:
    host: str
    port: int
    mailbox: Mailbox

    def apprise_url(self, to: str = "alerts@example.org") -> str:
        """The apprise URL for this plain-SMTP server (mailto://, not mailtos://: no STARTTLS)."""
        return f"mailto://{self.host}:{self.port}?from=monitor@example.org&to={to}"


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    mailbox = Mailbox()
    # aiosmtpd 1.4.6 cannot start on port 0 (its readiness probe connects to port 0), so ask
    # the OS for a free port first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp("127.0.0.1", controller.server.sockets[0].getsockname()[1], mailbox)
    finally:
        controller.stop()


# --- Databases ---------------------------------------------------------------------------------


def postgres_available() -> str | None:
    """None when PostgreSQL answers at 127.0.0.1:5432, else why it is skipped."""
    try:
        engine = store.make_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means: skip, and say why
        return (f"PostgreSQL is not reachable at 127.0.0.1:5432 (database 'test', trust auth): "
                f"{exc.__class__.__name__}. These tests need a real server there.")


def fresh_postgres_url() -> str:
    """Create an empty database for one test on the local server; returns its URL."""
    name = "cm_" + uuid.uuid4().hex[:12]
    admin = store.make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = store.make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/monitor.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    url = fresh_postgres_url()
    try:
        yield url
    finally:
        drop_postgres(url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = store.make_engine(database_url)
    store.create_schema(eng)
    yield eng
    eng.dispose()


# --- PDFs --------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]], *, header: str = "Acme Corp | Frontier Safety Framework",
             footer: str = "Page {page} of {pages}", title: str = "Frontier Safety Framework",
             width: int = 72, hyphenate: bool = True, compress: bool = True,
             password: str | None = None, producer: str = "reportlab") -> bytes:
    """A real multi-page PDF: each page's paragraphs wrapped at ``width`` characters (the first
    word of a continuation line split with a line-end hyphen when ``hyphenate``), a running
    header and a 'Page n of m' footer. ``password`` encrypts it; ``pages=[[]]`` draws no text."""
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    encrypt = StandardEncryption(password) if password else None
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=int(compress), encrypt=encrypt)
    pdf.setTitle(title)
    pdf.setProducer(producer)
    for number, paragraphs in enumerate(pages, start=1):
        if paragraphs:
            pdf.setFont("Helvetica", 9)
            pdf.drawString(72, 800, header)
            pdf.drawString(260, 40, footer.format(page=number, pages=len(pages)))
        pdf.setFont("Helvetica", 10)
        y = 760
        for paragraph in paragraphs:
            for line in _wrap_with_hyphens(paragraph, width, hyphenate):
                pdf.drawString(72, y, line)
                y -= 13
            y -= 9
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _wrap_with_hyphens(text: str, width: int, hyphenate: bool) -> list[str]:
    import textwrap

    lines = textwrap.wrap(text, width)
    if not hyphenate:
        return lines
    for i in range(len(lines) - 1):
        head, _, rest = lines[i + 1].partition(" ")
        if len(head) >= 7 and head.isalpha() and rest:
            lines[i] += " " + head[:3] + "-"
            lines[i + 1] = head[3:] + " " + rest
    return lines


@pytest.fixture
def pdf_factory() -> Callable[..., bytes]:
    """make_pdf, for tests that serve or parse generated PDFs."""
    return make_pdf


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A store on a SQLite file only, for tests whose subject is not the database (PostgreSQL
    setup costs seconds per test; use ``engine`` where both backends matter)."""
    eng = store.make_engine(sqlite_url)
    store.create_schema(eng)
    yield eng
    eng.dispose()
