"""The pipeline end to end over loopback: a local site serves versions of a policy page, a local
SMTP server receives the alerts, on SQLite and PostgreSQL. Time is injected; nothing sleeps."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import responses
from conftest import Response
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from monitor import fetch, notify, pipeline, store
from monitor.store import Alert, Change, Check, Delivery, Snapshot, SourceState, Version
from monitor.watchlist import Channel, Commitment, Defaults, Source, Watchlist, load

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database: PostgreSQL setup costs seconds per test."""
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#policy-alerts"
SLACK_HOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
MILITARY = "We will never allow our models to be used for military purposes."
WEAKENED = "We may allow our models to be used for military purposes in limited circumstances."
PROMO = '<div class="promo"><p>We will always answer within one day.</p></div>'
FILLER = "\n".join(f"<p>Paragraph {i} explains how customers reach support and what the service "
                   f"offers in region {i}.</p>" for i in range(8))


def page(military: str | None = MILITARY, *, footer: str = "© 2025 Acme", wrap: str = " ",
         extra: str = "") -> str:
    sentence = f"<p>{military.replace(' ', wrap)}</p>" if military else ""
    return f"""<html><head><title>Usage Policies</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<main><h1>Usage Policies</h1><h2>Universal policies</h2>
{sentence}
<p>We commit to publishing a safety report before every frontier model release.</p>
{extra}{FILLER}
</main><footer>{footer}</footer></body></html>"""


def make_watchlist(site, smtp, *, path: str = "/policy", quote: str = MILITARY[:-1],
                   **source: object) -> Watchlist:
    fields: dict[str, object] = dict(
        id="acme-usage", company="Acme", title="Usage Policies", url=site.url(path),
        drop=("footer", "nav"),
        commitments=(Commitment(id="no-military", title="No military use", quote=quote),))
    fields.update(source)
    return Watchlist(defaults=Defaults(notify=("team",), host_gap=0.001, timeout=2,
                                       failures_before_alert=2),
                     channels={"team": (smtp.apprise_url(),)},
                     sources=(Source(**fields),))  # type: ignore[arg-type]


class Clock:
    """An injected clock the test moves forward by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, hours: float = 6) -> None:
        self.now += timedelta(hours=hours)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def check(watchlist: Watchlist, engine: Engine, clock: Clock) -> pipeline.CheckSummary:
    clock.advance()
    [summary] = pipeline.check_all(watchlist, engine=engine, now=clock, worker="test")
    return summary


def deliver(watchlist: Watchlist, engine: Engine, clock: Clock) -> notify.DeliveryReport:
    return notify.deliver_pending(engine, watchlist, worker="test", now=clock)


def count(engine: Engine, table: type) -> int:
    with store.session(engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


def alerts(engine: Engine) -> list[Alert]:
    with store.session(engine) as s:
        return list(s.exec(select(Alert).order_by(Alert.id)))


def test_baseline_is_silent_then_a_weakening_is_emailed_once(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)

    first = check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)
    assert (first.outcome, first.changes, smtp.mailbox.messages) == ("baseline", 0, [])

    site.set("/policy", page(WEAKENED))
    second = check(watchlist, engine, clock)
    report = deliver(watchlist, engine, clock)

    assert (second.outcome, second.changes, report.sent) == ("changed", 1, 1)
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[WEAKENED] Acme · Usage Policies · No military use"
    with store.session(engine) as s:
        [change] = store.recent_changes(s)
    assert change.new_snapshot and change.old_snapshot and change.new_snapshot != \
        change.old_snapshot
    for body in (message.get_body(("plain",)).get_content(),
                 message.get_body(("html",)).get_content()):
        assert MILITARY in body and WEAKENED in body
        assert change.new_snapshot[:12] in body and change.old_snapshot[:12] in body
    assert deliver(watchlist, engine, clock).sent == 0


@responses.activate
@SQLITE_ONLY
def test_a_weakening_reaches_slack_with_subject_and_sentences(engine, site, smtp, clock) -> None:
    responses.add(responses.POST, SLACK_HOOK, body="ok")
    site.set("/policy", page())
    base = make_watchlist(site, smtp)
    watchlist = base.model_copy(update={"channels": {"team": Channel(urls=(SLACK_URL,))}})
    check(watchlist, engine, clock)
    site.set("/policy", page(WEAKENED))
    check(watchlist, engine, clock)

    assert deliver(watchlist, engine, clock).sent == 1

    [call] = responses.calls
    attachment = json.loads(call.request.body)["attachments"][0]
    assert attachment["title"] == "[WEAKENED] Acme · Usage Policies · No military use"
    assert MILITARY in attachment["text"] and WEAKENED in attachment["text"]


@SQLITE_ONLY
def test_a_channel_that_wants_only_weakenings_is_sent_only_them(engine, site, smtp,
                                                                 clock) -> None:
    """A newsroom's channel asks for weakened commitments only: it gets the weakening, listed
    alone under its own subject, and neither the added commitment beside it, nor an alert that
    only adds one, nor a failing source. The team's channel gets everything."""
    site.set("/policy", page())
    base = make_watchlist(site, smtp, discover=True, notify=("team", "newsroom"))
    watchlist = base.model_copy(update={"channels": {
        "team": Channel(urls=(smtp.apprise_url(to="team@example.org"),)),
        "newsroom": Channel(urls=(smtp.apprise_url(to="news@example.org"),),
                            only=frozenset({"weakened"}))}})
    check(watchlist, engine, clock)
    added = "<p>We will publish a transparency report every year.</p>"
    site.set("/policy", page(WEAKENED, extra=added))
    assert check(watchlist, engine, clock).changes == 2
    site.set("/policy", page(WEAKENED, extra=added + "<p>We will notify users of breaches.</p>"))
    assert check(watchlist, engine, clock).changes == 1
    site.set("/policy", Response("<h1>Internal Server Error</h1>", status=500))
    check(watchlist, engine, clock)
    check(watchlist, engine, clock)

    assert deliver(watchlist, engine, clock).sent == 4
    to_team = [m for m in smtp.mailbox.messages if m["To"] == "team@example.org"]
    [to_news] = [m for m in smtp.mailbox.messages if m["To"] == "news@example.org"]
    assert [m["Subject"].split("]")[0] for m in to_team] == ["[WEAKENED", "[ADDED", "[FAILING"]
    assert to_news["Subject"] == "[WEAKENED] Acme · Usage Policies · No military use"
    body = to_news.get_body(("plain",)).get_content()
    assert WEAKENED in body and "transparency report" not in body


@SQLITE_ONLY
def test_a_digest_channel_gets_one_message_a_day_holding_every_alert(engine, site, smtp,
                                                                     clock) -> None:
    """Alerts to a channel with `digest: '08:00'` wait for 08:00 UTC and go out as one
    message, the most severe named in its subject; a failed send retries them together. The
    team's channel has each alert at once."""
    site.set("/policy", page())
    base = make_watchlist(site, smtp, notify=("team", "daily"))
    watchlist = base.model_copy(update={"channels": {
        "team": Channel(urls=(smtp.apprise_url(to="team@example.org"),)),
        "daily": Channel(urls=(smtp.apprise_url(to="daily@example.org"),), digest="08:00")}})
    check(watchlist, engine, clock)                      # 14:00, the baseline
    site.set("/policy", page(WEAKENED))
    check(watchlist, engine, clock)                      # 20:00
    site.set("/policy", page(None))
    check(watchlist, engine, clock)                      # 02:00 the next day
    assert deliver(watchlist, engine, clock).sent == 2
    assert {m["To"] for m in smtp.mailbox.messages} == {"team@example.org"}

    clock.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    smtp.mailbox.fail_next = 1
    assert deliver(watchlist, engine, clock).failed == 2
    clock.advance(hours=1 / 60)
    assert deliver(watchlist, engine, clock).sent == 2

    [digest] = [m for m in smtp.mailbox.messages if m["To"] == "daily@example.org"]
    assert digest["Subject"] == ("[DIGEST] 2 alerts · [REMOVED] Acme · Usage Policies · "
                                 "No military use")
    html = digest.get_body(("html",)).get_content()
    assert re.findall(r"<h2>(\[\w+\]) Acme", html) == ["[WEAKENED]", "[REMOVED]"]
    assert WEAKENED in digest.get_body(("plain",)).get_content()
    with store.session(engine) as s:
        daily = s.exec(select(Delivery).where(Delivery.channel == "daily")).all()
    assert [(d.status, d.attempts) for d in daily] == [("sent", 2), ("sent", 2)]


@SQLITE_ONLY
def test_a_removed_commitment_subject_says_removed(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)

    site.set("/policy", page(None))
    assert check(watchlist, engine, clock).changes == 1
    deliver(watchlist, engine, clock)

    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[REMOVED] Acme · Usage Policies · No military use"
    assert MILITARY in message.get_body(("plain",)).get_content()


@SQLITE_ONLY
def test_a_commitment_put_back_two_versions_later_reads_as_restored(engine, site, smtp,
                                                                    clock) -> None:
    """The version it returns to is compared with one that never held it: only the source's
    stored history (a removal reported before) can say it is back."""
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)
    site.set("/policy", page(None))
    check(watchlist, engine, clock)
    site.set("/policy", page(None, extra="<p>We publish a transparency report every year.</p>"))
    check(watchlist, engine, clock)

    site.set("/policy", page())
    assert check(watchlist, engine, clock).changes == 1
    with store.session(engine) as s:
        statuses = [change.status for change in reversed(store.recent_changes(s))]
    assert statuses[0] == "removed" and statuses[-1] == "restored"


@SQLITE_ONLY
def test_a_mistyped_quote_is_reported_at_the_baseline(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp, quote="We will release every model weight to all")

    summary = check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)

    assert (summary.outcome, summary.changes) == ("baseline", 1)
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[NOT FOUND] Acme · Usage Policies · No military use"


@SQLITE_ONLY
def test_a_mistyped_quote_added_later_is_reported_once(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)
    typo = Commitment(id="reports", title="Safety reports",
                      quote="We commit to publish a safety report after each release")
    edited = watchlist.model_copy(update={"sources": (watchlist.sources[0].model_copy(
        update={"commitments": (*watchlist.sources[0].commitments, typo)}),)})

    summaries = [check(edited, engine, clock) for _ in range(2)]
    deliver(edited, engine, clock)

    assert [(s.outcome, s.changes) for s in summaries] == [("unchanged", 1), ("unchanged", 0)]
    [message] = smtp.mailbox.messages
    assert message["Subject"] == "[NOT FOUND] Acme · Usage Policies · Safety reports"
    assert (count(engine, Version), count(engine, Snapshot)) == (1, 1)


@SQLITE_ONLY
def test_cosmetic_changes_send_nothing_and_store_no_version(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)

    site.set("/policy", page(wrap="\n   ", footer="© 2026 Acme Corporation, all rights reserved"))
    summary = check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)

    assert (summary.outcome, summary.changes) == ("unchanged", 0)
    assert smtp.mailbox.messages == []
    assert (count(engine, Version), count(engine, Snapshot), count(engine, Change)) == (1, 1, 0)


@SQLITE_ONLY
def test_same_bytes_are_unchanged_and_a_304_is_not_modified(engine, site, smtp, clock) -> None:
    body = page()

    def conditional(handler: BaseHTTPRequestHandler) -> Response:
        if handler.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, headers={"ETag": '"v1"'})

    site.set("/plain", body)
    site.set("/etag", conditional)
    plain = make_watchlist(site, smtp, path="/plain")
    etag = make_watchlist(site, smtp, path="/etag", id="acme-etag")

    check(plain, engine, clock)
    check(etag, engine, clock)
    assert check(plain, engine, clock).outcome == "unchanged"
    assert check(etag, engine, clock).outcome == "not_modified"
    with store.session(engine) as s:
        checks, _ = store.history(s, "acme-etag")
    assert (checks[0].outcome, checks[0].http_status) == ("not_modified", 304)


@SQLITE_ONLY
def test_a_500_is_a_failed_check_never_a_change(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)

    site.set("/policy", Response("<h1>Internal Server Error</h1>", status=500))
    summary = check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)

    assert (summary.outcome, summary.changes) == ("failed", 0)
    assert summary.error and summary.error.startswith("http_status:")
    assert (count(engine, Change), smtp.mailbox.messages) == (0, [])
    with store.session(engine) as s:
        checks, _ = store.history(s, "acme-usage")
    assert (checks[0].outcome, checks[0].error_kind, checks[0].http_status) == (
        "failed", "http_status", 500)


def test_a_timeout_is_a_failed_check(sqlite_engine, site, smtp, clock) -> None:
    engine = sqlite_engine  # the failure path is the 500 test's; SQLite suffices
    site.set("/policy", page())
    base = make_watchlist(site, smtp)
    watchlist = base.model_copy(update={"defaults": base.defaults.model_copy(
        update={"timeout": timedelta(seconds=0.3)})})
    check(watchlist, engine, clock)

    site.set("/policy", Response(page(None), delay=1))  # beyond the 0.3 s timeout
    summary = check(watchlist, engine, clock)

    assert summary.outcome == "failed"
    assert (summary.error or "").startswith("timeout:")
    assert count(engine, Change) == 0


def test_failures_alert_once_at_the_threshold_and_once_on_recovery(engine, site, smtp,
                                                                   clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)  # failures_before_alert=2
    check(watchlist, engine, clock)

    site.set("/policy", Response("down", status=500, content_type="text/plain"))
    for _ in range(5):
        check(watchlist, engine, clock)
        deliver(watchlist, engine, clock)
    site.set("/policy", page())
    check(watchlist, engine, clock)
    check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)

    assert [a.kind for a in alerts(engine)] == ["health_failing", "health_recovered"]
    subjects = [m["Subject"] for m in smtp.mailbox.messages]
    assert subjects == ["[FAILING] Acme · Usage Policies · http_status",
                        "[RECOVERED] Acme · Usage Policies · checks succeed again"]
    assert "HTTP 500" in smtp.mailbox.messages[0].get_body(("plain",)).get_content()
    with store.session(engine) as s:
        state = s.get(SourceState, "acme-usage")
    assert state is not None and (state.failing_streak, state.health_alerted) == (0, False)


@SQLITE_ONLY
def test_alert_targets_are_resolved_before_the_write_lock_is_taken(engine, site, smtp, clock,
                                                                  monkeypatch) -> None:
    """A target's label may load apprise's ~260 plugins (0.2-0.5 s): on SQLite, doing that
    inside the record's transaction would stall every other check's write."""
    events: list[str] = []
    label = notify.Target.label.func  # type: ignore[attr-defined]
    lock_state = store.lock_state

    def resolving(target: notify.Target) -> str:
        events.append("label")
        return label(target)

    def locking(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("lock")
        return lock_state(*args, **kwargs)

    cached = functools.cached_property(resolving)
    cached.__set_name__(notify.Target, "label")
    monkeypatch.setattr(notify.Target, "label", cached)
    monkeypatch.setattr(store, "lock_state", locking)
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)  # failures_before_alert=2
    check(watchlist, engine, clock)
    labels_before_lock = []
    for serves in (page(WEAKENED), Response("down", status=500), Response("down", status=500),
                   page(WEAKENED)):
        site.set("/policy", serves)
        events.clear()
        check(watchlist, engine, clock)
        assert events.count("lock") == 1 and "label" not in events[events.index("lock"):], events
        labels_before_lock.append(events.count("label"))
    assert [a.kind for a in alerts(engine)] == ["changes", "health_failing", "health_recovered"]
    assert labels_before_lock == [1, 0, 1, 1]  # one target; the first failure alerts nobody


@SQLITE_ONLY
def test_a_collapsed_page_is_a_health_failure_and_keeps_the_version(engine, site, smtp,
                                                                    clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)

    site.set("/policy", "<html><body><main><h1>Usage Policies</h1><p>Something went wrong while "
             "loading this page.</p></main></body></html>")
    collapsed = check(watchlist, engine, clock)
    site.set("/policy", page())
    back = check(watchlist, engine, clock)

    assert collapsed.outcome == "failed" and (collapsed.error or "").startswith("collapsed:")
    assert back.outcome == "unchanged"
    assert (count(engine, Change), count(engine, Version)) == (0, 1)


def test_accepting_a_page_that_shrank_for_good_makes_it_the_new_baseline(engine, site, smtp,
                                                                          clock) -> None:
    site.set("/policy", page(extra=FILLER * 6))
    watchlist = make_watchlist(site, smtp)
    check(watchlist, engine, clock)
    shrunk = ("<html><body><main><h1>Usage Policies</h1><p>We will never allow our models to be "
              "used for military purposes.</p></main></body></html>")
    site.set("/policy", shrunk)
    assert check(watchlist, engine, clock).outcome == "failed"

    clock.advance()
    with fetch.make_client(watchlist.defaults) as client:
        accepted = pipeline.check_source(watchlist.sources[0], watchlist, engine=engine,
                                         client=client, now=clock, worker="test",
                                         rebaseline=True)
    site.set("/policy", shrunk.replace("will never allow", "may allow"))
    after = check(watchlist, engine, clock)

    assert accepted.outcome == "baseline" and accepted.changes == 0
    assert after.outcome == "changed"
    with store.session(engine) as s:
        assert [c.status for c in s.exec(select(Change)).all()] == ["weakened"]


def test_a_restarted_process_sees_the_history_and_sends_nothing_new(database_url, site, smtp,
                                                                    clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    first = store.make_engine(database_url)
    store.create_schema(first)
    check(watchlist, first, clock)
    site.set("/policy", page(WEAKENED))
    check(watchlist, first, clock)
    deliver(watchlist, first, clock)
    first.dispose()

    restarted = store.make_engine(database_url)
    store.create_schema(restarted)
    summary = check(watchlist, restarted, clock)
    deliver(watchlist, restarted, clock)
    restarted.dispose()

    assert summary.outcome == "unchanged"
    assert len(smtp.mailbox.messages) == 1


def test_a_source_leased_by_another_worker_is_skipped(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp)
    clock.advance()
    assert store.acquire_lease(engine, "acme-usage", worker="replica-2", now=clock(),
                               ttl=timedelta(minutes=10))

    clock.advance(hours=0.1)  # six minutes later: the lease is still live
    [summary] = pipeline.check_all(watchlist, engine=engine, now=clock, worker="test")

    assert summary.outcome == "skipped"
    assert (count(engine, Check), site.hits("/policy")) == (0, 0)


@SQLITE_ONLY
def test_editing_drop_is_never_reported_as_a_change(engine, site, smtp, clock) -> None:
    site.set("/policy", page(extra=PROMO))
    watchlist = make_watchlist(site, smtp, discover=True)
    check(watchlist, engine, clock)

    edited = make_watchlist(site, smtp, discover=True, drop=("footer", "nav", ".promo"))
    summary = check(edited, engine, clock)

    assert (summary.outcome, summary.changes) == ("changed", 0)
    assert count(engine, Change) == 0


@SQLITE_ONLY
def test_a_page_whose_charset_only_its_header_gives_is_read_again_with_it(
        engine, site, smtp, clock) -> None:
    # Decoded by guesswork, these bytes read "ŁódĽ": re-reading the stored snapshot after a
    # drop edit must use the charset it was fetched with, or the edit reads as a change.
    polish = "<p>We will pause training at our site in Łódź until the risk is contained.</p>"
    site.set("/policy", page(extra=PROMO + polish).replace("© ", "").encode("iso-8859-2"),
             content_type="text/html; charset=iso-8859-2")
    check(make_watchlist(site, smtp, discover=True), engine, clock)

    edited = make_watchlist(site, smtp, discover=True, drop=("footer", "nav", ".promo"))
    summary = check(edited, engine, clock)

    assert (summary.outcome, summary.changes) == ("changed", 0)
    with store.session(engine) as s:
        _, [version, _] = store.history(s, "acme-usage")
    assert "Łódź" in version.text


@SQLITE_ONLY
@pytest.mark.parametrize("elsewhere, status", [(True, "moved"), (False, "removed")])
def test_a_commitment_relocated_to_another_watched_document_reads_as_moved(
        engine, site, smtp, clock, elsewhere: bool, status: str) -> None:
    # OpenAI moved persuasion "outside the Preparedness Framework"; Anthropic moved duties into
    # a separate compliance framework: a removal is checked against the publisher's other pages.
    site.set("/policy", page())
    site.set("/compliance", page(None, extra=PROMO))
    policy = make_watchlist(site, smtp).sources[0]
    compliance = Source(id="acme-compliance", company="Acme", title="Compliance Framework",
                        url=site.url("/compliance"), drop=("footer", "nav"))
    watchlist = Watchlist(defaults=Defaults(notify=("team",), host_gap=0.001, timeout=2),
                          channels={"team": (smtp.apprise_url(),)},
                          sources=(policy, compliance))
    pipeline.check_all(watchlist, engine=engine, now=clock, worker="test")

    clock.advance()
    if elsewhere:
        site.set("/compliance", page(extra=PROMO))
        pipeline.check_all(watchlist, engine=engine, source_ids=["acme-compliance"], now=clock,
                           worker="test")
    site.set("/policy", page(None))
    pipeline.check_all(watchlist, engine=engine, source_ids=["acme-usage"], now=clock,
                       worker="test")

    with store.session(engine) as s:
        [change] = s.exec(select(Change).where(Change.source_id == "acme-usage")).all()
    assert (change.status, change.before) == (status, MILITARY)
    if elsewhere:
        assert "Acme · Compliance Framework" in change.reason


@SQLITE_ONLY
@pytest.mark.parametrize("put_back, status", [(False, "moved"), (True, "added")])
def test_a_commitment_arriving_from_another_watched_document_reads_as_moved_here(
        engine, site, smtp, clock, put_back: bool, status: str) -> None:
    # The document that loses a commitment may be checked first: its "removed" went out, and
    # the document that gains it says where it came from (unless the first one has it back).
    site.set("/policy", page())
    site.set("/compliance", page(None))
    policy = make_watchlist(site, smtp).sources[0]
    compliance = Source(id="acme-compliance", company="Acme", title="Compliance Framework",
                        url=site.url("/compliance"), drop=("footer", "nav"), discover=True)
    watchlist = Watchlist(defaults=Defaults(notify=("team",), host_gap=0.001, timeout=2),
                          channels={"team": (smtp.apprise_url(),)},
                          sources=(policy, compliance))
    pipeline.check_all(watchlist, engine=engine, now=clock, worker="test")

    clock.advance()
    site.set("/policy", page(None))
    pipeline.check_all(watchlist, engine=engine, source_ids=["acme-usage"], now=clock,
                       worker="test")
    if put_back:
        clock.advance()
        site.set("/policy", page())
        pipeline.check_all(watchlist, engine=engine, source_ids=["acme-usage"], now=clock,
                           worker="test")
    clock.advance()
    site.set("/compliance", page())
    pipeline.check_all(watchlist, engine=engine, source_ids=["acme-compliance"], now=clock,
                       worker="test")

    with store.session(engine) as s:
        [change] = s.exec(select(Change).where(Change.source_id == "acme-compliance")).all()
    assert (change.status, change.after) == (status, MILITARY)
    if status == "moved":
        assert change.reason.startswith("moved here from another document: Acme · Usage "
                                        "Policies, removed ")


@SQLITE_ONLY
def test_renormalise_rebuilds_versions_silently(engine, site, smtp, clock) -> None:
    site.set("/policy", page(extra=PROMO))
    check(make_watchlist(site, smtp), engine, clock)
    edited = make_watchlist(site, smtp, drop=("footer", "nav", ".promo"))

    rebuilt = pipeline.renormalise(edited, engine=engine)
    again = pipeline.renormalise(edited, engine=engine)
    next_check = check(edited, engine, clock)

    assert (rebuilt, again, next_check.outcome) == (1, 0, "unchanged")
    with store.session(engine) as s:
        _, versions = store.history(s, "acme-usage")
    assert "within one day" not in versions[0].text and "within one day" in versions[1].text
    assert (count(engine, Change), count(engine, Alert)) == (0, 0)


@SQLITE_ONLY
def test_a_new_normaliser_reading_the_same_page_otherwise_raises_no_alert(
        engine, site, smtp, clock, monkeypatch) -> None:
    """After an upgrade that bumps NORMALISER_VERSION, the stored text of the previous version
    is read again from its snapshot before comparing, so better extraction is never news."""
    site.set("/policy", page())
    watchlist = make_watchlist(site, smtp, discover=True)
    current = pipeline.normalise.normalise

    def older(result, source):  # type: ignore[no-untyped-def]
        document = current(result, source)  # an older reading, which missed a commitment
        lines = [line for line in document.text.splitlines() if "We commit" not in line]
        return dataclasses.replace(document, text="\n".join(lines))

    monkeypatch.setattr(pipeline, "NORMALISER_VERSION", pipeline.NORMALISER_VERSION - 1)
    monkeypatch.setattr(pipeline.normalise, "normalise", older)
    check(watchlist, engine, clock)
    monkeypatch.undo()
    upgraded = check(watchlist, engine, clock)

    assert (upgraded.error, count(engine, Change), count(engine, Alert)) == (None, 0, 0)
    with store.session(engine) as s:
        _, versions = store.history(s, "acme-usage")
    assert [v.normaliser_version for v in versions] == [pipeline.NORMALISER_VERSION,
                                                         pipeline.NORMALISER_VERSION - 1]
    assert versions[0].text != versions[1].text


@SQLITE_ONLY
def test_a_followed_link_to_a_new_document_is_announced(engine, site, smtp, clock) -> None:
    def landing(href: str) -> str:
        return f'<html><body><a class="doc" href="{href}">Current policy</a></body></html>'

    site.set("/index", landing("/policy-2025"))
    site.set("/policy-2025", page())
    site.set("/policy-2026", page())
    watchlist = make_watchlist(site, smtp, path="/index", follow="a.doc")
    check(watchlist, engine, clock)

    site.set("/index", landing("/policy-2026"))
    check(watchlist, engine, clock)
    deliver(watchlist, engine, clock)

    [alert] = alerts(engine)
    assert alert.kind == "new_version" and site.url("/policy-2026") in (alert.detail or "")
    assert smtp.mailbox.messages[0]["Subject"].startswith("[NEW VERSION] Acme · Usage Policies")


@SQLITE_ONLY
def test_one_broken_source_does_not_stop_the_others(engine, site, smtp, clock) -> None:
    site.set("/policy", page())
    site.set("/broken", Response("nope", status=404, content_type="text/plain"))
    good = make_watchlist(site, smtp)
    watchlist = good.model_copy(update={"sources": (
        *good.sources, good.sources[0].model_copy(update={"id": "broken",
                                                          "url": site.url("/broken")}))})
    clock.advance()

    summaries = pipeline.check_all(watchlist, engine=engine, now=clock, worker="test")

    assert {s.source_id: s.outcome for s in summaries} == {"acme-usage": "baseline",
                                                          "broken": "failed"}
    assert all(s.line().startswith(s.source_id) for s in summaries)


@SQLITE_ONLY
def test_every_alert_gets_one_delivery_per_target_in_the_same_commit(engine, site, smtp,
                                                                     clock) -> None:
    site.set("/policy", page())
    base = make_watchlist(site, smtp, quote="A quote that is not on the page at all")
    watchlist = base.model_copy(update={"channels": {"team": Channel(
        urls=(smtp.apprise_url(), smtp.apprise_url(to="legal@example.org")))}})

    check(watchlist, engine, clock)

    with store.session(engine) as s:
        rows = list(s.exec(select(Delivery)))
    assert len(rows) == 2 and {r.status for r in rows} == {"pending"}
    assert all(smtp.apprise_url() not in r.target for r in rows)


def test_summary_line_names_source_outcome_changes_and_error() -> None:
    line = pipeline.CheckSummary("acme", "failed", 0, "timeout: too slow", 1234).line()
    assert line == "acme: failed (timeout: too slow) [1234 ms]"
    assert pipeline.CheckSummary("acme", "changed", 2, None, 5).line() == \
        "acme: changed, 2 changes [5 ms]"



def test_sigkill_mid_check_stores_nothing_and_a_later_check_redoes_it(sqlite_url, site, smtp,
                                                                     tmp_path) -> None:
    """The real `check` command is killed while it waits for the page: no half-stored check; the
    dead process's lease expires and the next check records the baseline."""
    reached, release = threading.Event(), threading.Event()

    def held_page(handler: BaseHTTPRequestHandler) -> Response:
        if not release.is_set():
            reached.set()
            release.wait(timeout=30)
        return Response(page())

    site.set("/policy", held_page)
    path = tmp_path / "watchlist.yaml"
    path.write_text(f"""\
defaults: {{notify: [team], host_gap: 0.001}}
channels: {{team: ["{smtp.apprise_url()}"]}}
sources:
  - {{id: acme-usage, company: Acme, title: Usage Policies, url: "{site.url('/policy')}"}}
""")
    env = {**os.environ, "DATABASE_URL": sqlite_url, "MONITOR_WATCHLIST": str(path)}
    service = subprocess.Popen([sys.executable, "-m", "monitor", "check"], env=env,
                               cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert reached.wait(timeout=30), "the service never fetched the page"
        os.kill(service.pid, signal.SIGKILL)
        assert service.wait(timeout=10) == -signal.SIGKILL
    finally:
        service.kill()
        release.set()

    engine = store.make_engine(sqlite_url)
    assert (count(engine, Check), count(engine, Version), count(engine, Snapshot)) == (0, 0, 0)
    later = store.utcnow() + timedelta(hours=1)  # past any lease the dead process held
    [summary] = pipeline.check_all(load(path), engine=engine, now=lambda: later, worker="next")
    assert summary.outcome == "baseline"
    assert (count(engine, Check), count(engine, Version)) == (1, 1)
    engine.dispose()
