"""Send stored alerts: a durable outbox drained with apprise.

The pipeline commits every Alert with one Delivery row per target before anything is sent.
deliver_pending() then claims each due row with a conditional UPDATE (pending -> sending), so two
senders, threads or replicas never send the same row; records every try as an Attempt; marks the
row sent, schedules a retry with exponential backoff, marks it failed when retrying is futile (bad
URL or credentials), or expires it after MAX_AGE with one "delivery_expired" alert. A 'sending'
claim older than STALE_CLAIM belongs to a sender that died mid-send and is taken over: that is the
only way a message can go out twice (see docs/guarantees.md).

Resolved URLs carry secrets: they live only in memory for the send. Rows keep a hash of the URL
as written in the watchlist (``target``) and apprise's privacy-masked form (``target_label``);
error text is scrubbed of every secret before it is stored or logged.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from monitor import ops, render, store
from monitor.errors import DeliveryError
from monitor.render import Message
from monitor.store import Alert, Attempt, Change, Delivery
from monitor.watchlist import VAR, Channel, Source, Watchlist, expand_vars

logger = logging.getLogger(__name__)
Clock = Callable[[], datetime]

WORKER = f"{socket.gethostname()}:{os.getpid()}"
"""Who claims rows and leases; one id per process, so a restarted process may reclaim its own."""
STALE_CLAIM = timedelta(minutes=10)
"""A send never takes this long (SEND_TIMEOUT is far below), so such a claim's sender died."""
SEND_TIMEOUT = 120
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=2)
MAX_AGE = timedelta(days=3)
"""An alert still undelivered after this long is expired and reported, not retried forever."""
DELIVER_BATCH = 100
"""Sends per run of the daemon's delivery job, so that stopping never waits on a long queue."""
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
PERMANENT_MARKERS = ("(535,", "(530,", "authentication", "error=401.", "error=403.",
                     "error=404.", "invalid_token", "channel_not_found", "no_service")
"""Error text that means retrying is futile: rejected credentials, a webhook that is gone."""
HEALTH_KINDS = {"health_failing": "failing", "delivery_expired": "failing",
                "health_recovered": "recovered", "new_version": "new_version"}
"""What a channel's ``only`` calls each kind of source-health alert."""


@dataclass(frozen=True)
class Target:
    """One apprise URL of one channel, resolved for sending. Never store or log ``url``."""

    channel: str
    written: str  # as in the watchlist, ${VAR}s unexpanded
    url: str = field(repr=False)
    recipient: str | None = None  # the one address or channel of a URL that names several

    @property
    def key(self) -> str:
        """Identifies the target in rows without any secret; stable when a secret rotates."""
        whole = f"{self.channel}\n{self.written}"
        return store.sha256(whole if self.recipient is None else f"{whole}\n{self.recipient}")

    @functools.cached_property
    def label(self) -> str:
        """apprise's privacy-masked form of the URL, safe to show and to store.

        apprise is imported on first use (loading its ~260 plugins costs 0.2-0.5 s, which a
        quiet check never needs), so ``pipeline`` resolves labels before it takes the
        database's write lock."""
        return _masked(self.url) or self.opaque

    @property
    def opaque(self) -> str:
        """Only the scheme of a URL apprise cannot read: the rest may hold literal secrets."""
        return self.written.split("://", 1)[0] + "://…"

    @property
    def secrets(self) -> list[str]:
        return secrets_of(self.written, self.url)


@dataclass(frozen=True)
class TargetResult:
    channel: str
    label: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    expired: int


# --- Targets -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _masked(url: str) -> str | None:
    """apprise's privacy-masked form of a URL (None: no plugin reads it), parsed once per URL:
    1 ms each time otherwise, on every alert."""
    import apprise

    service = apprise.Apprise.instantiate(url)
    return service.url(privacy=True) if service else None


def channel_targets(watchlist: Watchlist, channel: str) -> list[Target]:
    return [target for written in watchlist.channels[channel].urls
            for target in _targets_of(channel, written)]


def _targets_of(channel: str, written: str) -> list[Target]:
    """One target per recipient of a URL that names several (an e-mail URL's addresses, a Slack
    URL's channels, ...): each is sent, retried and recorded on its own, so a refused address or
    a failing channel is retried alone instead of re-sending the alert to all the others."""
    url = _expand(written)
    singles = _one_url_per_recipient(url)
    if len(singles) < 2:
        return [Target(channel, written, url)]
    return [Target(channel, written, single, recipient) for recipient, single in singles]


def _one_url_per_recipient(url: str) -> list[tuple[str, str]]:
    """(recipient, the URL sending to it alone) for a URL naming several; empty otherwise."""
    if urlsplit(url).scheme.lower() in EMAIL_SCHEMES:
        return [(address, _with_recipient(url, address)) for address in _email_recipients(url)]
    return list(_apprise_targets(url))


def _email_recipients(url: str) -> list[str]:
    """The addresses an apprise mailto:// or mailtos:// URL sends to, read as apprise reads
    them: the path's segments, then the last ``to=``."""
    parts = urlsplit(url)
    named = [unquote(segment) for segment in parts.path.split("/") if segment]
    to = [value for _, key, value in _query_pairs(parts.query) if key == "to"]
    if to and to[-1]:
        from apprise.utils.parse import parse_emails  # e-mail URLs only; apprise sends them

        named += parse_emails(to[-1])
    return list(dict.fromkeys(named))


@functools.lru_cache(maxsize=256)
def _apprise_targets(url: str) -> tuple[tuple[str, str], ...]:
    """The targets of any other URL naming several (Slack channels, Telegram chats, Matrix
    rooms...), each with a URL for it alone. Services write tokens, targets and options in many
    ways, so apprise reads the URL and writes each one-target URL itself; a URL whose service
    does not take its targets back one at a time stays whole."""
    import apprise

    service = apprise.Apprise.instantiate(url)
    if service is None or len(service) < 2:
        return ()
    kind = type(service)
    settings = kind.parse_url(service.url(privacy=False)) or {}
    targets = settings.get("targets") or []
    if len(targets) != len(service):
        return ()
    singles = [(target, kind(**{**settings, "targets": [target]})) for target in targets]
    if any(len(single) != 1 for _, single in singles):
        return ()
    return tuple((target, single.url(privacy=False)) for target, single in singles)


def _with_recipient(url: str, recipient: str) -> str:
    """The URL sending to ``recipient`` alone; every other parameter kept byte for byte."""
    parts = urlsplit(url)
    query = [raw for raw, key, _ in _query_pairs(parts.query) if raw and key != "to"]
    query.append("to=" + quote(recipient, safe="@"))
    return urlunsplit((parts.scheme, parts.netloc, "", "&".join(query), parts.fragment))


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    """(raw pair, key, value) as apprise reads a query: pairs split at '&' and ';', keys
    lower-cased, both unquoted and stripped."""
    pairs = []
    for raw in (part for chunk in query.split("&") for part in chunk.split(";")):
        key, _, value = raw.partition("=")
        pairs.append((raw, unquote(key).lower().strip(), unquote(value).strip()))
    return pairs


def targets(watchlist: Watchlist, source: Source) -> list[Target]:
    """Every target of every channel of a source, each URL (or recipient) once even if two
    channels share it, with its label resolved (callers store alerts inside a write
    transaction)."""
    seen: set[tuple[str, str | None]] = set()
    result = []
    for channel in watchlist.channels_for(source):
        for target in channel_targets(watchlist, channel):
            if (target.written, target.recipient) not in seen:
                seen.add((target.written, target.recipient))
                result.append(target)
    for target in result:
        _ = target.label
    return result


def addressed(watchlist: Watchlist, source: Source, to: Sequence[Target],
              kinds: Collection[str]) -> list[Target]:
    """The targets whose channels want an alert of these kinds (its changes' statuses, or its
    health kind); a URL that several of the source's channels list goes if any of them wants it."""
    wanting = [watchlist.channels[name].urls for name in watchlist.channels_for(source)
               if name in watchlist.channels and watchlist.channels[name].wants(kinds)]
    return [target for target in to if any(target.written in urls for urls in wanting)]


def _expand(written: str) -> str:
    try:
        return expand_vars(written)
    except KeyError:  # validate reports it; here the send fails with a clear error
        return written


def secrets_of(written: str, url: str) -> list[str]:
    """Values that must never be shown: every ${VAR} value, and the URL's user and password."""
    found = [os.environ[name] for name in VAR.findall(written) if os.environ.get(name)]
    parts = urlsplit(url)
    found += [unquote(p) for p in (parts.username, parts.password) if p]
    found += [p for p in (parts.username, parts.password) if p]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


# --- Sending -----------------------------------------------------------------------------------


def send(target: Target, message: Message) -> None:
    """Send one message to one target; raise DeliveryError (permanent when retrying is futile).

    Services that render HTML get the HTML body (apprise derives the text alternative); the
    others (Slack, chat, SMS) get the plain text, never Markdown: a diff's '-'/'+' would
    turn into list bullets.
    """
    unset = ", ".join(f"${{{name}}}" for name in VAR.findall(target.url))
    if unset:
        raise DeliveryError(f"{target.channel}: a {target.opaque} URL uses {unset}, which is not "
                            "set; export it and restart", permanent=True)
    import apprise  # on first use, as in Target.label

    _capture_apprise_details()
    app = apprise.Apprise()
    if not app.add(target.url):
        raise DeliveryError(f"{target.channel}: apprise cannot use a {target.opaque} URL; run "
                            "`commitment-monitor validate` and fix it in the watchlist",
                            permanent=True)
    fmt = apprise.NotifyFormat.HTML
    if app[0].resolve_format(None) != fmt:
        fmt = apprise.NotifyFormat.TEXT
    result = app.notify(body=message.html if fmt == apprise.NotifyFormat.HTML else message.text,
                        title=message.subject, body_format=fmt, timeout=SEND_TIMEOUT,
                        log_level=logging.DEBUG)
    if not result:
        lines = [entry.message for service in result for entry in service.logs()
                 if entry.level != "DEBUG" or "Exception" in entry.message]
        error = scrub("; ".join(lines) or f"apprise reported {result.status.name}", target.secrets)
        permanent = any(marker.lower() in error.lower() for marker in PERMANENT_MARKERS)
        raise DeliveryError(f"{target.label}: {error}", permanent=permanent)


def _capture_apprise_details() -> None:
    """apprise states a failure's cause (e.g. SMTP "535 credentials invalid") only at DEBUG, and
    a notify() result captures only what the "apprise" logger lets through. Let everything
    through, but keep apprise out of the service log: each attempt is logged by us, scrubbed."""
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.DEBUG)
    apprise_log.propagate = False


def send_test(watchlist: Watchlist, channel: str | None = None) -> list[TargetResult]:
    """Send a short test message to every URL of one channel (or all); say which failed and why."""
    channels = [channel] if channel is not None else list(watchlist.channels)
    message = Message("Commitment Monitor test message",
                      "This is a test: alerts for this channel will arrive like this.\n",
                      "<p>This is a test: alerts for this channel will arrive like this.</p>")
    results = []
    for name in channels:
        for target in channel_targets(watchlist, name):
            try:
                send(target, message)
                results.append(TargetResult(name, target.label, True))
            except DeliveryError as exc:
                results.append(TargetResult(name, target.label, False, str(exc)))
    return results


# --- The outbox --------------------------------------------------------------------------------


def deliver_pending(engine: Engine, watchlist: Watchlist, *, worker: str = WORKER,
                    now: Clock = store.utcnow, limit: int | None = None,
                    max_age: timedelta = MAX_AGE) -> DeliveryReport:
    """Send every due delivery once (at most ``limit``: the daemon's job, which runs again in
    seconds); safe to run from several threads or processes at once.

    Each row is claimed just before its own send, never a batch up front: a batch behind a slow
    server could outlive STALE_CLAIM and be taken over, and sent twice. (A digest's rows are
    claimed together just before their one send.)"""
    expired = expire_old(engine, watchlist, now=now(), max_age=max_age)
    digests = any(channel.digest for channel in watchlist.channels.values())
    sent = failed = 0
    for delivery_id in due_ids(engine, now=now(), limit=limit):
        group = digest_group(engine, watchlist, delivery_id, now()) if digests else [delivery_id]
        won = claim(engine, group, worker=worker, now=now())
        if not won:
            continue  # another sender got there first
        if len(won) == 1:
            ok = deliver_one(engine, watchlist, won[0], worker=worker, now=now)
        else:
            ok = deliver_digest(engine, watchlist, won, worker=worker, now=now)
        if ok:
            sent += len(won)
        else:
            failed += len(won)
    report = DeliveryReport(sent, failed, expired)
    ops.observe_deliveries(report)
    return report


def _due(now: datetime) -> ColumnElement[bool]:
    """Pending and due, or claimed by a sender that has been silent too long (it died)."""
    return or_(and_(col(Delivery.status) == "pending", col(Delivery.next_attempt_at) <= now),
               and_(col(Delivery.status) == "sending",
                    col(Delivery.claimed_at) < now - STALE_CLAIM))


def due_ids(engine: Engine, *, now: datetime, limit: int | None) -> list[int]:
    with Session(engine) as s:
        query = select(Delivery.id).where(_due(now)).order_by(col(Delivery.id)).limit(limit)
        return [i for i in s.exec(query) if i is not None]


def digest_group(engine: Engine, watchlist: Watchlist, delivery_id: int,
                 now: datetime) -> list[int]:
    """The due rows to send in one message with this one: for a channel that sends a daily
    digest, every due row of the same target; otherwise this row alone."""
    with Session(engine) as s:
        delivery = s.get(Delivery, delivery_id)
        channel = watchlist.channels.get(delivery.channel) if delivery else None
        if delivery is None or channel is None or channel.digest is None:
            return [delivery_id]
        return [i for i in s.exec(select(Delivery.id).where(
            _due(now), col(Delivery.channel) == delivery.channel,
            col(Delivery.target) == delivery.target).order_by(col(Delivery.id))) if i is not None]


def claim(engine: Engine, ids: Sequence[int], *, worker: str, now: datetime) -> list[int]:
    """Claim rows with a conditional UPDATE: a row another sender claimed since we looked no
    longer matches, so exactly one sender wins each row. Returns the rows this worker won."""
    won = []
    with Session(engine) as s:
        for delivery_id in ids:
            claimed = s.execute(update(Delivery)
                                .where(col(Delivery.id) == delivery_id, _due(now))
                                .values(status="sending", claimed_by=worker, claimed_at=now))
            if claimed.rowcount == 1:
                won.append(delivery_id)
        s.commit()
    return won


def deliver_one(engine: Engine, watchlist: Watchlist, delivery_id: int, *, worker: str,
                now: Clock) -> bool:
    """Render and send one claimed delivery, then record the attempt. True when sent."""
    with store.session(engine) as s:
        delivery = s.get(Delivery, delivery_id)
        alert = s.get(Alert, delivery.alert_id) if delivery else None
        changes = store.alert_changes(s, delivery.alert_id) if delivery else []
    if delivery is None or alert is None:
        return False
    error: DeliveryError | None = None
    try:
        target = find_target(watchlist, delivery)
        send(target, render_alert(alert, changes, watchlist, watchlist.channels[delivery.channel]))
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # around one delivery: a bug here must not stop the other sends
        logger.exception("delivery=%s failed unexpectedly", delivery_id)
        error = DeliveryError(f"internal error: {exc.__class__.__name__}: {exc}")
    record_attempt(engine, delivery, worker=worker, at=now(), error=error)
    return error is None


def deliver_digest(engine: Engine, watchlist: Watchlist, delivery_ids: Sequence[int], *,
                   worker: str, now: Clock) -> bool:
    """Send claimed rows of one target as one digest message, then record the attempt on each:
    they succeed, or are retried, together. True when sent."""
    with store.session(engine) as s:
        deliveries = [d for d in (s.get(Delivery, i) for i in delivery_ids) if d is not None]
        rows = [(delivery, alert, store.alert_changes(s, delivery.alert_id))
                for delivery in deliveries if (alert := s.get(Alert, delivery.alert_id))]
    if not rows:
        return False
    error: DeliveryError | None = None
    try:
        target = find_target(watchlist, rows[0][0])
        channel = watchlist.channels[rows[0][0].channel]
        send(target, render.render_digest([render_alert(alert, changes, watchlist, channel)
                                           for _, alert, changes in rows]))
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # as in deliver_one: a bug here must not stop the other sends
        logger.exception("digest of deliveries %s failed unexpectedly", list(delivery_ids))
        error = DeliveryError(f"internal error: {exc.__class__.__name__}: {exc}")
    for delivery, _, _ in rows:
        record_attempt(engine, delivery, worker=worker, at=now(), error=error)
    return error is None


def find_target(watchlist: Watchlist, delivery: Delivery) -> Target:
    """The live target a row points to; gone from the watchlist means nothing to send to."""
    if delivery.channel in watchlist.channels:
        for target in channel_targets(watchlist, delivery.channel):
            if target.key == delivery.target:
                return target
        for written in watchlist.channels[delivery.channel].urls:  # a row stored before the URL
            whole = Target(delivery.channel, written, _expand(written))  # was split per address
            if whole.key == delivery.target:
                return whole
    raise DeliveryError(f"{delivery.target_label} is no longer in channel {delivery.channel!r} "
                        "of the watchlist; nothing to send to", permanent=True)


def render_alert(alert: Alert, changes: Sequence[Change], watchlist: Watchlist,
                 channel: Channel | None = None) -> Message:
    """The message for an alert; a channel that wants only some statuses is shown only those
    changes (all of them, if the watchlist changed since and none is wanted any more)."""
    source = source_for(alert, changes, watchlist)
    if alert.kind != "changes":
        return render.render_health(alert, source)
    shown = [c for c in changes if channel is None or channel.shows(c.status)] or list(changes)
    subject = alert.subject if len(shown) == len(changes) else render.changes_subject(shown, source)
    return render.render_changes(alert, shown, source, subject, watchlist.defaults.web_url)


def source_for(alert: Alert, changes: Sequence[Change], watchlist: Watchlist) -> Source:
    """The alert's source; one removed from the watchlist since still gets its alert sent."""
    try:
        return watchlist.source(alert.source_id)
    except KeyError:
        url = changes[0].url if changes else "https://removed.invalid/"
        return Source(id=alert.source_id, company=alert.source_id,
                      title="(no longer in the watchlist)", url=url)


def record_attempt(engine: Engine, delivery: Delivery, *, worker: str, at: datetime,
                   error: DeliveryError | None) -> None:
    attempts = delivery.attempts + 1
    if error is None:
        values: dict[str, object] = {"status": "sent", "sent_at": at, "last_error": None}
    elif error.permanent:
        values = {"status": "failed", "last_error": str(error)}
    else:
        values = {"status": "pending", "next_attempt_at": at + backoff(attempts),
                  "last_error": str(error)}
    if error is not None:
        logger.warning("delivery=%s target=%s attempt=%s %s: %s", delivery.id,
                       delivery.target_label, attempts, values["status"], error)
    with Session(engine) as s:
        s.add(Attempt(delivery_id=delivery.id or 0, at=at, ok=error is None,
                      error=None if error is None else str(error)))
        s.execute(update(Delivery)
                  .where(col(Delivery.id) == delivery.id, col(Delivery.claimed_by) == worker,
                         col(Delivery.status) == "sending")
                  .values(attempts=col(Delivery.attempts) + 1, claimed_by=None,
                          claimed_at=None, **values))
        s.commit()


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failed try, at most BACKOFF_MAX."""
    return min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)


def expire_old(engine: Engine, watchlist: Watchlist, *, now: datetime,
               max_age: timedelta) -> int:
    """Give up on deliveries older than max_age; say so once per source in a new alert.

    The notice about an undelivered notice is not itself reported when it expires, so a channel
    that stays down cannot breed alerts. Each row is expired with a conditional UPDATE, so two
    senders doing this at once report each row once.
    """
    too_old = and_(col(Delivery.status) == "pending", col(Delivery.created_at) < now - max_age)
    with store.session(engine) as s:
        old = s.exec(select(Delivery, Alert).join(Alert, col(Alert.id) == col(Delivery.alert_id))
                     .where(too_old)).all()
        by_source: dict[str, list[tuple[Delivery, Alert]]] = {}
        expired = 0
        for delivery, alert in old:
            won = s.execute(update(Delivery).where(col(Delivery.id) == delivery.id, too_old)
                            .values(status="expired")).rowcount
            expired += won
            if won and alert.kind != "delivery_expired":
                by_source.setdefault(alert.source_id, []).append((delivery, alert))
        for source_id, rows in by_source.items():
            add_expiry_alert(s, watchlist, source_id, rows, now=now, max_age=max_age)
        s.commit()
    return expired


def add_expiry_alert(s: Session, watchlist: Watchlist, source_id: str,
                     rows: list[tuple[Delivery, Alert]], *, now: datetime,
                     max_age: timedelta) -> None:
    try:
        source = watchlist.source(source_id)
    except KeyError:
        return  # no channels left to tell
    lines = [f"- {alert.subject} -> {delivery.target_label}: {delivery.last_error or 'not sent'}"
             for delivery, alert in rows]
    detail = (f"{len(rows)} alert deliveries were not sent within {max_age} and are given "
              "up:\n" + "\n".join(lines))
    alert = Alert(source_id=source_id, kind="delivery_expired", created_at=now, detail=detail,
                  subject=render.health_subject("delivery_expired", source,
                                                f"{len(rows)} alerts not delivered"))
    add_alert(s, alert, addressed(watchlist, source, targets(watchlist, source),
                                  {HEALTH_KINDS[alert.kind]}), now=now, watchlist=watchlist)


def add_alert(s: Session, alert: Alert, to: Sequence[Target], *, now: datetime,
              watchlist: Watchlist) -> Alert:
    """Store an alert and its outbox rows, one per target (in the caller's transaction), due at
    once or, for a digest channel, at its next digest time."""
    s.add(alert)
    s.flush()
    for target in to:
        channel = watchlist.channels.get(target.channel)
        s.add(Delivery(alert_id=alert.id or 0, channel=target.channel, target=target.key,
                       target_label=target.label, created_at=now,
                       next_attempt_at=channel.send_at(now) if channel else now))
    return alert
