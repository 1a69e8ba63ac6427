"""The outbox: real email to a local SMTP server, Slack's payload intercepted, claims and retries
on SQLite and PostgreSQL, with an injected clock (no sleeping)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apprise
import pytest
import responses
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import Mailbox
from sqlalchemy.engine import Engine
from sqlmodel import select

from monitor import notify, pipeline, render, store
from monitor.store import Alert, Attempt, Change, Delivery
from monitor.watchlist import Defaults, Source, Watchlist, load

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests whose subject is not the database: PostgreSQL setup costs seconds per test."""
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#policy-alerts"
SLACK_HOOK = "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
SOURCE = Source(id="anthropic-rsp", company="Anthropic", title="Responsible Scaling Policy",
                url="https://anthropic.example/rsp")


def watchlist_with(*urls: str) -> Watchlist:
    return Watchlist(defaults=Defaults(notify=("team",)), channels={"team": urls},
                     sources=(SOURCE,))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smtp_url(port: int | str, auth: str = "") -> str:
    return f"mailto://{auth}127.0.0.1:{port}?from=monitor@example.org&to=alerts@example.org"


def add_changes_alert(engine: Engine, watchlist: Watchlist, *, at: datetime = T0,
                      title: str = "Pause when safeguards lag") -> int:
    """Store one alert with one weakened commitment, as the pipeline would."""
    with store.session(engine) as s:
        change = Change(source_id=SOURCE.id, key="pause", commitment_id="pause",
                        commitment_title=title, status="weakened",
                        reason='modal downgrade: "will" -> "may"',
                        before="We will pause training when safeguards lag.",
                        after="We may pause training when safeguards lag.",
                        diff=json.dumps([["=", "We"], ["-", "will"], ["+", "may"],
                                         ["=", "pause training when safeguards lag."]]),
                        old_snapshot="9c1e" * 16, new_snapshot="3f2a" * 16,
                        old_fetched_at=at - timedelta(days=30), new_fetched_at=at,
                        url=SOURCE.url, detected_at=at)
        alert = notify.add_alert(s, Alert(source_id=SOURCE.id, kind="changes", created_at=at,
                                          subject=render.changes_subject([change], SOURCE)),
                                 notify.targets(watchlist, SOURCE), now=at, watchlist=watchlist)
        change.alert_id = alert.id
        s.add(change)
        s.commit()
        return alert.id or 0


def deliveries(engine: Engine) -> list[Delivery]:
    with store.session(engine) as s:
        return list(s.exec(select(Delivery).order_by(Delivery.id)))


def attempts(engine: Engine) -> list[Attempt]:
    with store.session(engine) as s:
        return list(s.exec(select(Attempt).order_by(Attempt.id)))


def test_an_alert_is_emailed_once_with_evidence_in_text_and_html(engine, smtp) -> None:
    watchlist = watchlist_with(smtp.apprise_url())
    add_changes_alert(engine, watchlist)

    report = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    again = notify.deliver_pending(engine, watchlist, worker="w",
                                   now=lambda: T0 + timedelta(hours=1))

    assert (report.sent, report.failed, again.sent) == (1, 0, 0)
    [message] = smtp.mailbox.messages
    assert message["Subject"] == ("[WEAKENED] Anthropic · Responsible Scaling Policy · "
                                  "Pause when safeguards lag")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "We will pause training when safeguards lag." in body
        assert "We may pause training when safeguards lag." in body
        assert "9c1e9c1e9c1e" in body and "3f2a3f2a3f2a" in body
    assert "<del>will</del>" in html
    [row] = deliveries(engine)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, T0)


@responses.activate
@SQLITE_ONLY
def test_slack_gets_plain_text_with_subject_and_both_sentences(engine) -> None:
    responses.add(responses.POST, SLACK_HOOK, body="ok")
    watchlist = watchlist_with(SLACK_URL)
    add_changes_alert(engine, watchlist)

    assert notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0).sent == 1

    [call] = responses.calls
    payload = json.loads(call.request.body)
    attachment = payload["attachments"][0]
    assert attachment["title"].startswith("[WEAKENED] Anthropic · Responsible Scaling Policy")
    assert "We will pause training when safeguards lag." in attachment["text"]
    assert "We may pause training when safeguards lag." in attachment["text"]
    assert "[-will-] {+may+}" in attachment["text"]  # not turned into Markdown bullets
    assert payload["channel"] == "#policy-alerts"
    [row] = deliveries(engine)
    assert "TIiajkdnlazkcOXrIdevi7" not in row.target_label


@responses.activate
@SQLITE_ONLY
def test_slack_500_is_retried_after_backoff_and_then_sent(engine) -> None:
    responses.add(responses.POST, SLACK_HOOK, status=500)
    responses.add(responses.POST, SLACK_HOOK, body="ok")
    watchlist = watchlist_with(SLACK_URL)
    add_changes_alert(engine, watchlist)

    first = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    too_soon = notify.deliver_pending(engine, watchlist, worker="w",
                                      now=lambda: T0 + timedelta(seconds=30))
    later = notify.deliver_pending(engine, watchlist, worker="w",
                                   now=lambda: T0 + timedelta(minutes=2))

    assert (first.failed, too_soon.sent + too_soon.failed, later.sent) == (1, 0, 1)
    assert len(responses.calls) == 2
    assert [a.ok for a in attempts(engine)] == [False, True]
    assert "500" in (attempts(engine)[0].error or "")


@SQLITE_ONLY
def test_smtp_down_then_back_is_retried_and_sent_once(engine, smtp, monkeypatch) -> None:
    monkeypatch.setenv("SMTP_PORT", str(closed_port()))
    watchlist = watchlist_with(smtp_url("${SMTP_PORT}"))
    add_changes_alert(engine, watchlist)

    down = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    [row] = deliveries(engine)
    assert (down.failed, row.status, row.next_attempt_at) == (1, "pending",
                                                             T0 + timedelta(minutes=1))
    assert "Connection error" in (row.last_error or "")

    monkeypatch.setenv("SMTP_PORT", str(smtp.port))  # the server is back
    back = notify.deliver_pending(engine, watchlist, worker="w",
                                  now=lambda: T0 + timedelta(minutes=1))
    notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0 + timedelta(hours=1))

    assert back.sent == 1 and len(smtp.mailbox.messages) == 1
    assert [a.ok for a in attempts(engine)] == [False, True]


@SQLITE_ONLY
def test_a_451_answer_is_retried(engine, smtp) -> None:
    smtp.mailbox.fail_next = 1
    watchlist = watchlist_with(smtp.apprise_url())
    add_changes_alert(engine, watchlist)

    first = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    second = notify.deliver_pending(engine, watchlist, worker="w",
                                    now=lambda: T0 + timedelta(minutes=5))

    assert (first.failed, second.sent, len(smtp.mailbox.messages)) == (1, 1, 1)
    assert deliveries(engine)[0].attempts == 2


@SQLITE_ONLY
def test_a_refused_recipient_is_retried_alone_never_resending_to_the_others(engine,
                                                                             smtp) -> None:
    smtp.mailbox.refuse = {"gone@example.org"}
    watchlist = watchlist_with(smtp.apprise_url(
        "alerts@example.org,gone@example.org,legal@example.org"))
    add_changes_alert(engine, watchlist)

    for minutes in (0, 5, 60):
        notify.deliver_pending(engine, watchlist, worker="w",
                               now=lambda minutes=minutes: T0 + timedelta(minutes=minutes))

    assert sorted(str(message["To"]) for message in smtp.mailbox.messages) == [
        "alerts@example.org", "legal@example.org"]
    rows = {re.search(r"/(\w+)%40example\.org", row.target_label)[1]: row  # type: ignore[index]
            for row in deliveries(engine)}
    assert {name: (row.status, row.attempts) for name, row in rows.items()} == {
        "alerts": ("sent", 1), "gone": ("pending", 3), "legal": ("sent", 1)}
    assert "'gone@example.org': (550" in (rows["gone"].last_error or "")


@SQLITE_ONLY
def test_a_row_stored_before_its_url_was_split_per_recipient_still_finds_it(engine,
                                                                            smtp) -> None:
    url = smtp.apprise_url("alerts@example.org,legal@example.org")
    watchlist = watchlist_with(url)
    add_changes_alert(engine, watchlist)
    with store.session(engine) as s:  # as an older version stored it: one row for the URL
        for row in s.exec(select(Delivery)).all():
            s.delete(row)
        s.add(Delivery(alert_id=1, channel="team", target=store.sha256(f"team\n{url}"),
                       target_label="mailto://…", next_attempt_at=T0, created_at=T0))
        s.commit()

    assert notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0).sent == 1
    assert sorted(str(m["To"]) for m in smtp.mailbox.messages) == [
        "alerts@example.org", "legal@example.org"]


def test_each_recipient_of_an_email_url_gets_the_url_with_only_its_address() -> None:
    url = ("mailtos://bot:p%40ss@smtp.example.org:587/ops@example.org"
           "?from=m@example.org;to=a+tag@x.org, Policy Desk <desk@z.org>&name=Policy%20Bot")
    watchlist = watchlist_with(url, "mailto://127.0.0.1:25?from=m@example.org&to=solo@example.org")

    *split, solo = notify.channel_targets(watchlist, "team")

    assert [t.recipient for t in split] == ["ops@example.org", "a+tag@x.org",
                                            "Policy Desk <desk@z.org>"]
    assert [t.url for t in split] == [
        "mailtos://bot:p%40ss@smtp.example.org:587?from=m@example.org&name=Policy%20Bot"
        f"&to={to}" for to in ("ops@example.org", "a%2Btag@x.org",
                               "Policy%20Desk%20%3Cdesk@z.org%3E")]
    assert len({t.key for t in split}) == 3 and all(t.written == url for t in split)
    # as apprise reads them: one address each, the password and the sender's name intact
    services = [apprise.Apprise.instantiate(t.url) for t in split]
    assert [[to for _, to in service.targets] for service in services] == [
        ["ops@example.org"], ["a+tag@x.org"], ["desk@z.org"]]
    assert {(service.password, service.from_addr[0]) for service in services} == {
        ("p@ss", "Policy Bot")}
    assert (solo.recipient, solo.key) == (None, store.sha256(f"team\n{solo.written}"))


@SQLITE_ONLY
def test_a_one_off_delivery_sends_everything_due_beyond_the_daemons_batch(engine, smtp) -> None:
    """`check` and `accept` deliver once and exit: a limit there would leave alerts waiting for
    the next check (hours, from cron)."""
    watchlist = watchlist_with(smtp.apprise_url())
    for n in range(notify.DELIVER_BATCH + 1):
        add_changes_alert(engine, watchlist, title=f"Commitment {n}")

    report = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)

    assert report.sent == notify.DELIVER_BATCH + 1
    assert len(smtp.mailbox.messages) == notify.DELIVER_BATCH + 1
    assert notify.due_ids(engine, now=T0, limit=None) == []


@responses.activate
@SQLITE_ONLY
def test_a_failing_slack_channel_is_retried_alone_never_reposting_to_the_others(engine) -> None:
    posts: list[str] = []

    def hook(request: Any) -> tuple[int, dict[str, str], str]:
        channel = json.loads(request.body)["channel"]
        posts.append(channel)
        return (500, {}, "down") if channel == "#gone" else (200, {}, "ok")

    responses.add_callback(responses.POST, SLACK_HOOK, callback=hook)
    watchlist = watchlist_with(SLACK_URL + "/#gone/@legal")
    add_changes_alert(engine, watchlist)

    for minutes in (0, 5, 60):
        notify.deliver_pending(engine, watchlist, worker="w",
                               now=lambda minutes=minutes: T0 + timedelta(minutes=minutes))

    assert sorted(posts) == ["#gone", "#gone", "#gone", "#policy-alerts", "@legal"]
    assert sorted((row.status, row.attempts) for row in deliveries(engine)) == [
        ("pending", 3), ("sent", 1), ("sent", 1)]


def test_each_channel_of_a_slack_or_telegram_url_gets_a_url_of_its_own_read_back_by_apprise(
        monkeypatch) -> None:
    monkeypatch.setenv("SLACK_TOKENS", "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7")
    written = "slack://Monitor@${SLACK_TOKENS}/#policy-alerts/@legal?footer=no"
    telegram = "tgram://123456789:abcdefg_hijklmnop/-100123/-100456?silent=yes"
    watchlist = watchlist_with(written, SLACK_URL, telegram)

    *split, solo, chat1, chat2 = notify.channel_targets(watchlist, "team")

    assert [t.recipient for t in split] == ["#policy-alerts", "@legal"]
    services = [apprise.Apprise.instantiate(t.url) for t in split]
    assert [service.channels for service in services] == [["#policy-alerts"], ["@legal"]]
    assert {(service.user, service.token_c, service.include_footer) for service in services} == {
        ("Monitor", "TIiajkdnlazkcOXrIdevi7", False)}
    assert all("TIiajkdnlazkcOXrIdevi7" not in t.label for t in split)
    assert len({t.key for t in split}) == 2 and all(t.written == written for t in split)
    assert (solo.recipient, solo.key) == (None, store.sha256(f"team\n{SLACK_URL}"))
    chats = [apprise.Apprise.instantiate(t.url) for t in (chat1, chat2)]
    assert [(chat.targets, chat.silent) for chat in chats] == [
        ([(-100123, None)], True), ([(-100456, None)], True)]


def test_backoff_doubles_and_is_capped() -> None:
    assert [notify.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert notify.backoff(30) == notify.BACKOFF_MAX


def test_two_senders_at_once_send_each_alert_exactly_once(engine, smtp) -> None:
    watchlist = watchlist_with(smtp.apprise_url())
    for n in range(6):
        add_changes_alert(engine, watchlist, title=f"Commitment {n}")
    barrier = threading.Barrier(2)
    reports = []

    def sender(worker: str) -> None:
        barrier.wait()
        reports.append(notify.deliver_pending(engine, watchlist, worker=worker, now=lambda: T0))

    threads = [threading.Thread(target=sender, args=(f"sender-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    subjects = sorted(m["Subject"] for m in smtp.mailbox.messages)
    assert len(subjects) == 6 and len(set(subjects)) == 6
    assert sum(r.sent for r in reports) == 6
    assert all(d.status == "sent" for d in deliveries(engine))
    assert len(attempts(engine)) == 6


def test_a_row_claimed_since_a_sender_looked_is_not_claimed_again(engine, smtp) -> None:
    watchlist = watchlist_with(smtp.apprise_url())
    add_changes_alert(engine, watchlist)
    seen_by_a = notify.due_ids(engine, now=T0, limit=10)
    seen_by_b = notify.due_ids(engine, now=T0, limit=10)

    won_by_a = notify.claim(engine, seen_by_a, worker="a", now=T0)
    won_by_b = notify.claim(engine, seen_by_b, worker="b", now=T0)

    assert (len(seen_by_b), len(won_by_a), won_by_b) == (1, 1, [])


def test_a_stale_sending_claim_is_reclaimed_and_a_fresh_one_is_left_alone(engine, smtp) -> None:
    watchlist = watchlist_with(smtp.apprise_url())
    add_changes_alert(engine, watchlist)
    # a sender claimed the row at T0 and died before recording anything
    due = notify.due_ids(engine, now=T0, limit=10)
    assert notify.claim(engine, due, worker="dead", now=T0) == [deliveries(engine)[0].id]

    fresh = notify.deliver_pending(engine, watchlist, worker="w",
                                   now=lambda: T0 + timedelta(minutes=5))
    stale = notify.deliver_pending(engine, watchlist, worker="w",
                                   now=lambda: T0 + notify.STALE_CLAIM + timedelta(seconds=1))

    assert (fresh.sent, stale.sent, len(smtp.mailbox.messages)) == (0, 1, 1)
    assert deliveries(engine)[0].status == "sent"


@SQLITE_ONLY
def test_an_unusable_url_fails_permanently_without_retries(engine) -> None:
    watchlist = watchlist_with("slack://literal-secret-token")
    add_changes_alert(engine, watchlist)

    report = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    later = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0 + timedelta(1))

    [row] = deliveries(engine)
    assert (report.failed, later.failed, row.status, row.attempts) == (1, 0, "failed", 1)
    assert "apprise cannot use a slack://… URL" in (row.last_error or "")
    assert "literal-secret-token" not in row.last_error + row.target_label


@SQLITE_ONLY
def test_rejected_smtp_credentials_fail_permanently(engine) -> None:
    def deny(*_: object) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = closed_port()
    server = Controller(Mailbox(), hostname="127.0.0.1", port=port, authenticator=deny,
                        auth_require_tls=False)
    server.start()
    try:
        watchlist = watchlist_with(smtp_url(port, auth="bot:wrong-password@"))
        add_changes_alert(engine, watchlist)
        report = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)
    finally:
        server.stop()

    [row] = deliveries(engine)
    assert (report.failed, row.status, row.attempts) == (1, "failed", 1)
    assert "535" in (row.last_error or "") and "wrong-password" not in (row.last_error or "")


@SQLITE_ONLY
def test_a_target_removed_from_the_watchlist_fails_permanently(engine, smtp) -> None:
    add_changes_alert(engine, watchlist_with(smtp.apprise_url()))
    edited = watchlist_with(smtp.apprise_url(to="someone-else@example.org"))

    report = notify.deliver_pending(engine, edited, worker="w", now=lambda: T0)

    [row] = deliveries(engine)
    assert (report.failed, row.status, smtp.mailbox.messages) == (1, "failed", [])
    assert "no longer in channel 'team'" in (row.last_error or "")


@SQLITE_ONLY
def test_an_old_undelivered_alert_expires_with_one_notice(engine) -> None:
    watchlist = watchlist_with(smtp_url(closed_port()))
    add_changes_alert(engine, watchlist)
    notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)

    late = T0 + notify.MAX_AGE + timedelta(minutes=1)
    report = notify.deliver_pending(engine, watchlist, worker="w", now=lambda: late)
    much_later = late + notify.MAX_AGE + timedelta(minutes=1)
    notify.deliver_pending(engine, watchlist, worker="w", now=lambda: much_later)

    with store.session(engine) as s:
        alerts = list(s.exec(select(Alert).order_by(Alert.id)))
    assert report.expired == 1
    assert [a.kind for a in alerts] == ["changes", "delivery_expired"]  # the notice itself
    assert "not sent within" in (alerts[1].detail or "")                # expiring adds nothing
    assert [d.status for d in deliveries(engine)] == ["expired", "expired"]


@SQLITE_ONLY
def test_an_unset_variable_is_named_without_showing_the_url(engine, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_TOKENS", "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7")
    watchlist = watchlist_with("slack://${SLACK_TOKENS}/#policy-alerts")
    add_changes_alert(engine, watchlist)
    monkeypatch.delenv("SLACK_TOKENS")  # gone by the time the alert is sent

    notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)

    [row] = deliveries(engine)
    assert row.status == "failed"
    assert "uses ${SLACK_TOKENS}, which is not set" in (row.last_error or "")


@SQLITE_ONLY
def test_secrets_stay_out_of_rows_and_logs(engine, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-very-secret")
    watchlist = watchlist_with(smtp_url(closed_port(), auth="bot:${SMTP_PASSWORD}@"))
    add_changes_alert(engine, watchlist)

    with caplog.at_level(logging.DEBUG):
        notify.deliver_pending(engine, watchlist, worker="w", now=lambda: T0)

    [row] = deliveries(engine)
    stored = [row.target, row.target_label, row.last_error or ""] + \
        [a.error or "" for a in attempts(engine)]
    assert row.last_error and all("hunter2" not in text for text in stored)
    assert "hunter2" not in caplog.text


def test_send_test_says_which_target_failed_and_why(smtp) -> None:
    watchlist = watchlist_with(smtp.apprise_url(), smtp_url(closed_port()))

    results = notify.send_test(watchlist, "team")

    assert [r.ok for r in results] == [True, False]
    assert "Connection error" in (results[1].error or "")
    assert smtp.mailbox.messages[0]["Subject"] == "Commitment Monitor test message"


@pytest.mark.parametrize("channel", ["team", None])
def test_send_test_covers_one_or_all_channels(smtp, channel) -> None:
    watchlist = watchlist_with(smtp.apprise_url())
    assert [r.channel for r in notify.send_test(watchlist, channel)] == ["team"]



# --- SIGKILL during a send, then a restart -------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
WATCHLIST_YAML = """\
defaults:
  notify: [team]
  host_gap: 0.001
channels:
  team:
    - {mail}
sources:
  - id: acme-usage
    company: Acme
    title: Usage Policies
    url: {url}
    commitments:
      - id: pause
        title: Pause when safeguards lag
        quote: We will pause training when safeguards lag
"""
PAGE = "<html><body><main><h1>Policy</h1><p>{}</p><p>{}</p></main></body></html>"
FILLER = " ".join(f"Section {i} describes how the service works in region {i}." for i in range(12))


class GatedMailbox(Mailbox):
    """Holds the client at one SMTP step until the test lets go: at RCPT (nothing accepted
    yet) or at DATA (the message is stored, the 250 answer not yet sent)."""

    def __init__(self, hold: str) -> None:
        super().__init__()
        self.hold = hold
        self.reached = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:  # noqa: N802
        envelope.rcpt_tos.append(address)
        self._gate("RCPT")
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        self._gate("DATA")
        return reply

    def _gate(self, step: str) -> None:
        if step == self.hold and not self.release.is_set():
            self.reached.set()
            self.release.wait(timeout=30)


@pytest.fixture
def stored_alert(request, sqlite_url, site, tmp_path):
    """One weakened-commitment alert stored by earlier checks, a watchlist file for the real
    service, and an SMTP server that will hold the client at ``request.param``. SQLite only:
    the claims themselves are tested on both databases above; this is about the process."""
    database_url = sqlite_url
    mailbox = GatedMailbox(request.param)
    port = closed_port()
    server = Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    path = tmp_path / "watchlist.yaml"
    path.write_text(WATCHLIST_YAML.format(mail=smtp_url(port), url=site.url("/policy")))
    watchlist = load(path)
    engine = store.make_engine(database_url)
    store.create_schema(engine)
    earlier = store.utcnow() - timedelta(hours=1)
    for minute, sentence in enumerate(("We will pause training when safeguards lag.",
                                       "We may pause training when safeguards lag.")):
        site.set("/policy", PAGE.format(sentence, FILLER))
        pipeline.check_all(watchlist, engine=engine, worker="earlier",
                           now=lambda m=minute: earlier + timedelta(minutes=m))
    yield engine, watchlist, mailbox, {**os.environ, "DATABASE_URL": database_url,
                                       "MONITOR_WATCHLIST": str(path)}
    mailbox.release.set()
    server.stop()
    engine.dispose()


def kill_while_held(mailbox: GatedMailbox, env: dict[str, str]) -> None:
    """Run the real `commitment-monitor check` and SIGKILL it while the SMTP server holds it."""
    service = subprocess.Popen([sys.executable, "-m", "monitor", "check"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert mailbox.reached.wait(timeout=30), "the service never reached the SMTP server"
        os.kill(service.pid, signal.SIGKILL)
        assert service.wait(timeout=10) == -signal.SIGKILL
    finally:
        service.kill()
        mailbox.release.set()


def after_restart(engine: Engine, watchlist: Watchlist) -> notify.DeliveryReport:
    """A new sender, later than the dead one's claim can stay fresh."""
    later = store.utcnow() + notify.STALE_CLAIM + timedelta(minutes=1)
    return notify.deliver_pending(engine, watchlist, worker="restarted", now=lambda: later)


@pytest.mark.parametrize("stored_alert", ["RCPT"], indirect=True)
def test_sigkill_before_the_server_accepted_then_restart_sends_once(stored_alert) -> None:
    engine, watchlist, mailbox, env = stored_alert
    add_changes_alert(engine, watchlist, at=store.utcnow() - timedelta(minutes=30))

    kill_while_held(mailbox, env)
    # the dead process held only the row it was sending: rows are claimed one at a time
    assert [d.status for d in deliveries(engine)] == ["sending", "pending"]
    report = after_restart(engine, watchlist)

    assert report.sent == 2 and len(mailbox.messages) == 2
    assert [d.status for d in deliveries(engine)] == ["sent", "sent"]
    assert after_restart(engine, watchlist).sent == 0


@pytest.mark.parametrize("stored_alert", ["DATA"], indirect=True)
def test_sigkill_after_the_server_accepted_is_the_one_documented_duplicate(stored_alert) -> None:
    """docs/guarantees.md: killed between the server's acceptance and our commit, the claim
    goes stale and the alert is sent again: at-least-once, never lost."""
    engine, watchlist, mailbox, env = stored_alert

    kill_while_held(mailbox, env)
    report = after_restart(engine, watchlist)

    assert report.sent == 1 and len(mailbox.messages) == 2
    assert mailbox.messages[0]["Subject"] == mailbox.messages[1]["Subject"]
