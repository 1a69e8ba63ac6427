"""Fault injection over loopback, end to end: pipeline.check_all, then notify.deliver_pending.

Each test runs a watchlist of three sources. Two are healthy and change between checks (one
commitment weakened); the third, ``faulty``, gets the fault. The fault must be a failed check of
its own kind for that source alone, never a commitment change (above all never a ``removed``),
while the healthy sources are checked and alerted as usual, and the next good answer finds the
stored version intact. The mail server, Slack, the database and the watchlist file get their
turn as the faulty part too. Time is injected; nothing sleeps to wait for work.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import socketserver
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner
from conftest import Mailbox, Site, Smtp
from faults_support import RawSite, free_port, slow_drip, smtp_server, truncated_body
from sqlalchemy import LargeBinary, event, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel
from tenacity import wait_fixed

from monitor import fetch, notify, pipeline, scheduler, store
from monitor.cli import main
from monitor.store import Attempt, Change, Check, Delivery, SourceState
from monitor.watchlist import Commitment, Defaults, Source, Watchlist, load

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
KEPT = "We will never sell personal data to advertisers."
WEAKENED = "We may sell personal data to advertisers."
OTHER = "We will publish a safety report before every frontier model release."
FILLER = "".join(f"<p>Paragraph {i} explains how customers reach support and what the service "
                 f"offers in region {i}.</p>" for i in range(8))
HEALTHY = ("lab-a", "lab-b")
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#policy-alerts"
SLACK_HOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"


def policy(lead: str = KEPT, *, extra: str = "") -> str:
    return (f"<html><head><title>Privacy Policy</title></head><body><nav>Home</nav><main>"
            f"<h1>Privacy Policy</h1><p>{lead}</p><p>{OTHER}</p>{extra}{FILLER}</main>"
            f"<footer>(c) Lab</footer></body></html>")


def answer(status: int, body: bytes | str = b"", *, headers: dict[str, str] | None = None,
           length: bool = True, content_type: str = "text/html; charset=utf-8"):  # type: ignore[no-untyped-def]
    """A raw route writing one HTTP/1.1 response, then closing the connection; without
    ``length`` the body is delimited by the close alone."""
    data = body.encode() if isinstance(body, str) else body

    def write(handler: socketserver.StreamRequestHandler) -> None:
        head = [f"HTTP/1.1 {status} Fault", f"Content-Type: {content_type}",
                "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        if length:
            head.append(f"Content-Length: {len(data)}")
        handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
    return write


def hang_up(handler: socketserver.StreamRequestHandler) -> None:
    """Reads the request and closes the connection without a word."""


@cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * 30_000_000)  # 30 MB of zeros in about 30 KB


CHALLENGE = ("<html><head><title>Just a moment...</title></head><body><div id='cf'>"
             "<script>window._cf_chl_opt={cvId: '3'};</script>Checking your browser</div>"
             "</body></html>")
NESTED = "<html><body><main>" + "<div>" * 5_000 + KEPT + "</main></body></html>"

FAULTS = [
    pytest.param(lambda: answer(500, "Internal Server Error"), "http_status", id="http-500"),
    pytest.param(lambda: answer(503, "Service Unavailable"), "http_status", id="http-503"),
    pytest.param(lambda: answer(429, "Slow down", headers={"Retry-After": "0"}), "http_status",
                 id="http-429"),
    pytest.param(lambda: answer(200, CHALLENGE), "challenge", id="challenge-page-with-200"),
    pytest.param(lambda: answer(200, policy(extra="<p>x</p>" * 200_000), length=False),
                 "too_large", id="huge-page-over-max-bytes"),
    pytest.param(lambda: answer(200, gzip_bomb(), headers={"Content-Encoding": "gzip"}),
                 "too_large", id="gzip-bomb"),
    pytest.param(lambda: answer(200, b"not gzip at all", headers={"Content-Encoding": "gzip"}),
                 "decode", id="broken-gzip"),
    pytest.param(lambda: answer(302, headers={"Location": "/faulty"}), "redirect_loop",
                 id="redirect-loop"),
    pytest.param(lambda: slow_drip, "timeout", id="slow-drip"),
    pytest.param(lambda: truncated_body, "truncated", id="truncated-body"),
    pytest.param(lambda: hang_up, "connect", id="hang-up-without-an-answer"),
    pytest.param(lambda: answer(200, NESTED), "too_deep", id="malformed-deep-nesting"),
    pytest.param(lambda: answer(200, b"\xff\xfe\x00\x01garbage\x00<<>>\x9f"), "selector_empty",
                 id="binary-garbage-as-html"),
    pytest.param(lambda: answer(200, policy().encode("utf-16-le")), "selector_empty",
                 id="utf-16-without-bom"),
    pytest.param(lambda: answer(200, ""), "selector_empty", id="empty-body"),
]

TOLERATED = [
    pytest.param(lambda: answer(200, policy().replace("</p>", "").replace("</main>", "")),
                 id="unclosed-tags"),
    pytest.param(lambda: answer(200, policy(), content_type="text/html; charset=x-unknown-42"),
                 id="unknown-charset"),
    pytest.param(lambda: answer(200, policy(extra="<p>Caf\u00e9 \u201cterms\u201d.</p>")
                                .encode("cp1252")), id="cp1252-bytes-declared-utf-8"),
    pytest.param(lambda: answer(200, policy(extra="<p>Nul\x00 and \x07 bytes.</p>")),
                 id="control-bytes"),
]


# --- the world: three sources, one SMTP server, one SQLite file, an injected clock -------------


@dataclass
class World:
    site: Site
    raw: RawSite
    smtp: Smtp
    engine: Engine
    now: datetime = T0
    channels: tuple[str, ...] = ()
    defaults: Defaults = Defaults(notify=("team",), host_gap=0.001, timeout=1,
                                  max_bytes=1_000_000, failures_before_alert=3)

    @property
    def watchlist(self) -> Watchlist:
        def source(source_id: str, url: str) -> Source:
            return Source(id=source_id, company=source_id.title(), title="Privacy Policy",
                          url=url, select="main", discover=True,
                          commitments=(Commitment(id="no-selling", title="No selling of data",
                                                  quote=KEPT[:-1]),))
        sources = [source(i, self.site.url(f"/{i}")) for i in HEALTHY]
        # The same host as the healthy sources: a slow fault queues them behind it in the
        # per-host politeness gate, and they must still be checked in time.
        sources.append(source("faulty", self.raw.url("/faulty")))
        return Watchlist(defaults=self.defaults,
                         channels={"team": self.channels or (self.smtp.apprise_url(),)},
                         sources=tuple(sources))

    def clock(self) -> datetime:
        return self.now

    def check(self, *source_ids: str) -> dict[str, pipeline.CheckSummary]:
        self.now += timedelta(hours=1)
        summaries = pipeline.check_all(self.watchlist, engine=self.engine,
                                       source_ids=source_ids or None, now=self.clock,
                                       worker="test")
        return {summary.source_id: summary for summary in summaries}

    def deliver(self, after: timedelta = timedelta(0)) -> notify.DeliveryReport:
        self.now += after
        return notify.deliver_pending(self.engine, self.watchlist, worker="test",
                                      now=self.clock)

    def baseline(self) -> None:
        for source_id in HEALTHY:
            self.site.set(f"/{source_id}", policy())
        self.raw.routes["/faulty"] = answer(200, policy())
        assert {s.outcome for s in self.check().values()} == {"baseline"}
        self.deliver()

    def weaken_healthy_sources(self) -> None:
        for source_id in HEALTHY:
            self.site.set(f"/{source_id}", policy(WEAKENED))

    def changes(self, source_id: str | None = None) -> list[Change]:
        with store.session(self.engine) as s:
            return store.recent_changes(s, source_id=source_id)

    def last_check(self, source_id: str) -> Check:
        with store.session(self.engine) as s:
            checks, _ = store.history(s, source_id)
        return checks[0]

    def current_version(self, source_id: str) -> int | None:
        with store.session(self.engine) as s:
            state = s.get(SourceState, source_id)
        return state.version_id if state else None

    def subjects(self) -> list[str]:
        return sorted(str(m["Subject"]) for m in self.smtp.mailbox.messages)


WEAKENED_SUBJECTS = [f"[WEAKENED] {i.title()} · Privacy Policy · No selling of data"
                     for i in HEALTHY]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetch retries still happen, without the production back-off between them."""
    monkeypatch.setattr(fetch, "BACKOFF", wait_fixed(0.01))


@pytest.fixture
def raw() -> Iterator[RawSite]:
    server = RawSite()
    yield server
    server.close()


@pytest.fixture
def world(site: Site, raw: RawSite, smtp: Smtp, sqlite_url: str) -> Iterator[World]:
    engine = store.make_engine(sqlite_url)
    store.create_schema(engine)
    yield World(site, raw, smtp, engine)
    engine.dispose()


# --- HTTP faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "kind"), FAULTS)
def test_an_http_fault_fails_only_its_own_check_with_its_kind_and_is_never_a_change(
        world: World, fault, kind: str) -> None:
    world.baseline()
    version = world.current_version("faulty")
    world.raw.routes["/faulty"] = fault()
    world.weaken_healthy_sources()

    summaries = world.check()
    report = world.deliver()

    assert summaries["faulty"].outcome == "failed"
    assert (summaries["faulty"].error or "").startswith(f"{kind}:"), summaries["faulty"]
    check = world.last_check("faulty")
    assert (check.outcome, check.error_kind) == ("failed", kind)
    healthy = [(summaries[i].outcome, summaries[i].changes) for i in HEALTHY]
    assert healthy == [("changed", 1)] * 2, summaries
    assert (report.sent, world.subjects()) == (2, WEAKENED_SUBJECTS)
    assert world.changes("faulty") == []
    assert "removed" not in {change.status for change in world.changes()}

    world.raw.routes["/faulty"] = answer(200, policy())  # the site recovers
    assert world.check()["faulty"].outcome == "unchanged"
    assert world.current_version("faulty") == version and world.changes("faulty") == []


@pytest.mark.parametrize("page", TOLERATED)
def test_sloppy_but_readable_pages_are_read_and_report_no_change(world: World, page) -> None:
    world.baseline()
    world.raw.routes["/faulty"] = page()
    world.weaken_healthy_sources()

    summaries = world.check()
    world.deliver()

    assert summaries["faulty"].outcome in ("changed", "unchanged"), summaries["faulty"]
    assert world.changes("faulty") == []
    assert world.subjects() == WEAKENED_SUBJECTS


# --- the database ------------------------------------------------------------------------------


def test_a_full_disk_fails_one_check_clearly_and_the_next_alerts_the_change_once(
        world: World) -> None:
    world.baseline()
    world.weaken_healthy_sources()
    world.site.set("/lab-a", policy(WEAKENED, extra=appendix()))  # needs new pages to store
    with world.engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar()

    def disk_full(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    world.engine.dispose()  # new connections see a database that cannot grow
    event.listen(world.engine, "connect", disk_full)
    try:
        full = world.check("lab-a")["lab-a"]
    finally:
        event.remove(world.engine, "connect", disk_full)
        world.engine.dispose()

    assert (full.outcome, full.error) == ("failed", "database: could not store the check "
                                          "(database or disk is full); the next check redoes it")
    assert world.changes() == []
    assert world.check("lab-a")["lab-a"].changes == 1
    assert world.deliver().sent == 1
    assert world.check("lab-a")["lab-a"].outcome == "unchanged"
    assert (world.deliver(timedelta(hours=1)).sent, len(world.smtp.mailbox.messages)) == (0, 1)
    assert [c.status for c in world.changes()] == ["weakened"]


def test_a_locked_database_fails_one_check_clearly_and_the_next_alerts_the_change_once(
        world: World, sqlite_url: str) -> None:
    world.baseline()
    world.weaken_healthy_sources()

    def short_busy_timeout(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA busy_timeout = 200")

    world.engine.dispose()
    event.listen(world.engine, "connect", short_busy_timeout)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock, longer than
    try:                               # the busy timeout
        locked = world.check("lab-a")["lab-a"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert (locked.outcome, locked.error) == ("failed", "database: could not store the check "
                                              "(database is locked); the next check redoes it")
    assert world.changes() == []
    assert world.check("lab-a")["lab-a"].changes == 1
    assert world.deliver().sent == 1
    assert (world.deliver(timedelta(hours=1)).sent, world.subjects()) == (0, WEAKENED_SUBJECTS[:1])


def appendix() -> str:
    """About 40 KB of text with no commitment in it, that compresses poorly."""
    rng = random.Random(5)
    words = ["office", "district", "hours", "region", "contact", "branch", "desk", "line"]
    return "".join(f"<p>Appendix {i}: {' '.join(rng.choices(words, k=12))} {rng.random()}.</p>"
                   for i in range(400))


# --- the mail server and Slack -----------------------------------------------------------------


class RefusingMailbox(Mailbox):
    """Answers DATA with ``codes`` in turn (e.g. 451, then 554), then accepts."""

    def __init__(self, *codes: str) -> None:
        super().__init__()
        self.codes = list(codes)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        if self.codes:
            return self.codes.pop(0)
        return await super().handle_DATA(server, session, envelope)


def test_smtp_down_then_refusing_then_accepting_delivers_each_alert_exactly_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = RefusingMailbox("451 4.3.0 try again later", "554 5.3.0 transaction failed")
    with smtp_server(mailbox) as server:
        monkeypatch.setenv("SMTP_PORT", str(free_port()))  # nothing listens there: down
        world.channels = ("mailto://127.0.0.1:${SMTP_PORT}?from=monitor@example.org"
                          "&to=alerts@example.org",)
        world.baseline()
        world.weaken_healthy_sources()
        world.check()

        reports = [world.deliver()]
        monkeypatch.setenv("SMTP_PORT", str(server.port))  # up, but refusing
        reports += [world.deliver(after) for after in (timedelta(minutes=1),
                                                       timedelta(minutes=2),
                                                       timedelta(hours=3))]

    # down: both fail; then one gets 451 and the other 554 (both retried); then both are sent
    assert [(r.sent, r.failed) for r in reports] == [(0, 2), (0, 2), (2, 0), (0, 0)]
    assert sorted(str(m["Subject"]) for m in mailbox.messages) == WEAKENED_SUBJECTS
    with store.session(world.engine) as s:
        rows = s.exec(select(Delivery)).scalars().all()
        tries = s.exec(select(Attempt).order_by(Attempt.id)).scalars().all()
    assert [(d.status, d.attempts) for d in rows] == [("sent", 3), ("sent", 3)]
    assert [a.ok for a in tries] == [False, False, False, False, True, True]
    errors = " | ".join(a.error or "" for a in tries)
    assert "Connection" in errors and "451" in errors and "554" in errors


@responses.activate
def test_slack_500_then_200_delivers_once_while_email_goes_out_at_once(world: World) -> None:
    responses.add(responses.POST, SLACK_HOOK, status=500)
    responses.add(responses.POST, SLACK_HOOK, body="ok")
    world.channels = (world.smtp.apprise_url(), SLACK_URL)
    world.baseline()
    world.site.set("/lab-a", policy(WEAKENED))
    world.check()

    first = world.deliver()
    second = world.deliver(timedelta(minutes=2))
    third = world.deliver(timedelta(hours=3))

    assert [(r.sent, r.failed) for r in (first, second, third)] == [(1, 1), (1, 0), (0, 0)]
    assert world.subjects() == WEAKENED_SUBJECTS[:1]
    posts = [json.loads(call.request.body)["attachments"][0] for call in responses.calls]
    assert len(posts) == 2 and posts[0]["text"] == posts[1]["text"]
    assert posts[1]["title"] == WEAKENED_SUBJECTS[0] and WEAKENED in posts[1]["text"]


# --- untrusted page text in messages -----------------------------------------------------------

HOSTILE = ("We may sell personal data to advertisers &lt;script&gt;alert('x')&lt;/script&gt; "
           "&lt;!channel&gt; &lt;b onmouseover=alert(1)&gt;now&lt;/b&gt;.")


@responses.activate
def test_page_text_is_escaped_in_html_email_and_slack(world: World) -> None:
    responses.add(responses.POST, SLACK_HOOK, body="ok")
    world.channels = (world.smtp.apprise_url(), SLACK_URL)
    world.baseline()
    world.site.set("/lab-a", policy(HOSTILE))
    world.check()
    assert world.deliver().sent == 2

    [message] = world.smtp.mailbox.messages
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;!channel&gt;" in html
    assert "<script>alert('x')</script>" in message.get_body(("plain",)).get_content()
    slack = json.loads(responses.calls[0].request.body)["attachments"][0]["text"]
    assert "<script>" not in slack and "<!channel>" not in slack
    assert "&lt;script&gt;" in slack and "&lt;!channel&gt;" in slack


# --- secrets -----------------------------------------------------------------------------------

SECRET = "s3cret-Passw0rd-4711"


def stored_text(engine: Engine) -> str:
    """Every text and binary value of every row of every table, as one string."""
    values = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for column, value in zip(table.columns, row, strict=True):
                    if isinstance(column.type, LargeBinary) and value is not None:
                        value = value.hex()  # compressed snapshots: the secret is not in pages
                    values.append(str(value))
    return "\n".join(values)


def test_a_password_in_a_failing_channel_never_shows_anywhere(
        world: World, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SECRET)
    port = free_port()  # the mail server is down: every send fails and is logged and stored
    channel = (f"mailto://bot:${{SMTP_PASSWORD}}@127.0.0.1:{port}?from=monitor@example.org"
               "&to=alerts@example.org")
    world.channels = (channel,)
    path = tmp_path / "watchlist.yaml"
    path.write_text(f"""\
defaults: {{notify: [team], host_gap: 0.001, timeout: 2s, failures_before_alert: 1}}
channels: {{team: ["{channel}"]}}
sources:
  - {{id: lab-a, company: Lab-A, title: Privacy Policy, url: "{world.site.url('/lab-a')}",
     discover: true}}
  - {{id: faulty, company: Faulty, title: Privacy Policy, url: "{world.raw.url('/faulty')}"}}
""")
    world.site.set("/lab-a", policy())
    world.raw.routes["/faulty"] = answer(503, "down")
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(main, ["--watchlist", str(path), "--database", sqlite_url,
                                      "-vv", *args])
        return f"{result.output}\n{result.exception!r}"

    with caplog.at_level(logging.DEBUG):
        outputs = [cli("validate"), cli("check"), cli("test-notify"), cli("status")]
        world.site.set("/lab-a", policy(WEAKENED))
        outputs += [cli("check"), cli("changes", "--json"), cli("status")]
        notify.deliver_pending(world.engine, load(path), worker="later",
                               now=lambda: store.utcnow() + timedelta(hours=1))

    shown = "\n".join(outputs)
    assert "FAILED  team: mailto://bot:****@127.0.0.1" in shown and "Connection error" in shown
    with store.session(world.engine) as s:
        assert s.exec(select(Change)).scalars().all(), "no change was recorded"
        assert len(s.exec(select(Attempt)).scalars().all()) >= 3, "sends were not tried"
    for where, content in (("CLI output", shown), ("logs", caplog.text),
                           ("stored rows", stored_text(world.engine))):
        assert SECRET not in content, f"the password appears in the {where}"


# --- a broken watchlist edit -------------------------------------------------------------------


def test_a_half_saved_watchlist_is_refused_while_every_source_keeps_being_checked_and_alerted(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Extends tests/test_scheduler.py (a bad value, a deleted file): here the editor's save is
    cut off mid-file, and the last good watchlist keeps checking AND alerting every source."""
    world.baseline()  # an hour ago, by the injected clock
    path = tmp_path / "watchlist.yaml"
    saved = world_yaml(world)
    path.write_text(saved)
    service = scheduler.Service(path, world.engine, worker="test")
    service.start(paused=True)
    try:  # the save stops a few characters into lab-b's URL
        path.write_text(saved[: saved.index("    url:", saved.index("id: lab-b")) + 14])
        with caplog.at_level(logging.ERROR, logger="monitor.watchlist"):
            assert service.reload() is False
        world.weaken_healthy_sources()
        checked = [service.check(source_id) for source_id in (*HEALTHY, "faulty")]
        report = notify.deliver_pending(world.engine, service.watchlist, worker="test")
    finally:
        service.stop()

    assert "rejected, still running the last good one" in caplog.text
    assert f"{path}:" in caplog.text
    assert checked == [True, True, True]
    assert (report.sent, world.subjects()) == (2, WEAKENED_SUBJECTS)


def world_yaml(world: World) -> str:
    sources = "".join(
        f"  - id: {source.id}\n    company: {source.company}\n    title: {source.title}\n"
        f"    url: {source.url}\n    select: main\n    discover: true\n    commitments:\n"
        f"      - {{id: no-selling, title: No selling of data, quote: \"{KEPT[:-1]}\"}}\n"
        for source in world.watchlist.sources)
    return (f"defaults: {{notify: [team], host_gap: 0.001, timeout: 2s, every: 1h}}\n"
            f"channels: {{team: [\"{world.smtp.apprise_url()}\"]}}\nsources:\n{sources}")
