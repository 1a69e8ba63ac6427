"""One check of one source, start to finish: the only module that knows the order of the stages.

    lease -> fetch -> (304, or same bytes and config: stop) -> normalise -> (same text: stop)
          -> detect -> persist and release

Everything a check produces (Check, Snapshot, Version, Change and Alert rows, their Delivery
rows, the SourceState update, the lease's release) is committed in ONE transaction, and nothing
is sent here:
notify.deliver_pending sends what was stored. So a crash at any point loses nothing: either the
whole check is stored, or none of it and the next check redoes it.

A fetch or normalise failure is a failed Check (a source-health event), never a commitment
change; one health alert goes out when failures reach ``failures_before_alert`` in a row, and one
when the source recovers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor import fetch, normalise, notify, ops, render, store
from monitor.detect import Finding, arrived, detect, relocated
from monitor.errors import NormaliseError, SourceError
from monitor.fetch import FetchResult
from monitor.normalise import NORMALISER_VERSION, Document
from monitor.store import Alert, Change, Check, Snapshot, SourceState, Version
from monitor.watchlist import Source, Watchlist

logger = logging.getLogger(__name__)
Clock = Callable[[], datetime]
WORKER = notify.WORKER
MOVE_WINDOW = timedelta(days=90)
"""A commitment moved between documents appears in one within weeks of leaving the other: an
older removal is history, not where a new sentence came from."""
LEASE_MIN = timedelta(seconds=30)
"""A lease lasts 10 timeouts (a check makes a few requests) but at least this long: a replica
killed mid-check holds its sources for that long, and a check outliving its lease is fenced out
at commit (``store.lock_state``), so a short floor costs at most a repeated fetch."""


@dataclass(frozen=True)
class CheckSummary:
    source_id: str
    outcome: str  # baseline | changed | unchanged | not_modified | failed | skipped
    changes: int  # commitment changes recorded by this check
    error: str | None  # "kind: message" when failed
    duration_ms: int

    def line(self) -> str:
        """The one line `commitment-monitor check` prints for a source."""
        text = f"{self.source_id}: {self.outcome}"
        if self.changes:
            text += f", {self.changes} change{'s' if self.changes != 1 else ''}"
        if self.error:
            text += f" ({self.error})"
        return f"{text} [{self.duration_ms} ms]"


@dataclass(frozen=True)
class Run:
    """What every step of one check needs to know."""

    source: Source
    watchlist: Watchlist
    engine: Engine
    now: Clock
    worker: str
    started_at: datetime
    clock: float  # time.monotonic() at the start
    state: SourceState  # as read when the lease was taken
    rebaseline: bool = False

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.clock) * 1000)


# --- Entry points ------------------------------------------------------------------------------


def check_all(watchlist: Watchlist, *, engine: Engine, source_ids: Sequence[str] | None = None,
              workers: int = 8, now: Clock = store.utcnow,
              worker: str = WORKER) -> list[CheckSummary]:
    """Check every (or the named) source once, in a thread pool sharing one HTTP client and one
    per-host politeness gate. Stores everything, sends nothing: run notify.deliver_pending next.
    Raises KeyError naming an unknown source id; never raises for one source's failure."""
    sources = [watchlist.source(i) for i in source_ids] if source_ids else list(watchlist.sources)
    if not sources:
        return []
    gate = fetch.HostGate(watchlist.defaults.host_gap)
    with fetch.make_client(watchlist.defaults) as client, \
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(sources)))) as pool:
        return list(pool.map(lambda source: check_source(
            source, watchlist, engine=engine, client=client, gate=gate, now=now, worker=worker),
            sources))


def check_source(source: Source, watchlist: Watchlist, *, engine: Engine, client: httpx.Client,
                 gate: fetch.HostGate | None = None, now: Clock = store.utcnow,
                 worker: str = WORKER, rebaseline: bool = False) -> CheckSummary:
    """Check one source now. Never raises: whatever goes wrong is this source's failed check.

    ``rebaseline`` takes what the source serves now as a new baseline, judging nothing: for a
    page that shrank or was restructured for good, whose checks otherwise fail as collapsed."""
    ttl = max(LEASE_MIN, watchlist.defaults.timeout * 10)
    try:
        state = store.acquire_lease(engine, source.id, worker=worker, now=now(), ttl=ttl)
    except SQLAlchemyError as exc:  # locked or unreachable: nothing stored, the next check runs
        state, summary = None, _unstored(source, exc, 0)
    else:
        summary = CheckSummary(source.id, "skipped", 0, "being checked by another worker", 0)
    if state is None:
        ops.observe_check(summary)
        return summary
    # The check starts once it holds the lease, so the recorded [start, start + duration] of two
    # checks of one source never overlap, even when one replica waited for another's release.
    run = Run(source, watchlist, engine, now, worker, now(), time.monotonic(), state, rebaseline)
    try:
        try:
            summary = _check(run, client, gate)
        except SourceError as exc:
            summary = _record_failure(run, exc)
        except SQLAlchemyError as exc:  # e.g. a full disk: this check is lost, the next redoes it
            summary = _record_failure(run, SourceError("database", database_error(exc)))
        except Exception as exc:  # around one source: a bug or a broken page must not stop others
            logger.exception("source=%s unexpected error", source.id)
            summary = _record_failure(run, SourceError("internal", f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:  # nothing stored, so the lease is still ours to release
        _release_lease(engine, source, worker)
        if not isinstance(exc, SQLAlchemyError):
            raise
        summary = _unstored(source, exc, run.elapsed_ms())  # even the failure was not stored
    logger.info("source=%s outcome=%s changes=%d ms=%d%s", source.id, summary.outcome,
                summary.changes, summary.duration_ms, f" error={summary.error}"
                if summary.error else "")
    ops.observe_check(summary)
    return summary


def database_error(exc: SQLAlchemyError) -> str:
    """The database's own one-line reason ("database or disk is full", "database is locked"),
    without the SQL statement and its parameters, which hold page text."""
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
    return f"could not store the check ({(reason or [''])[0][:200]}); the next check redoes it"


def _unstored(source: Source, exc: SQLAlchemyError, elapsed_ms: int) -> CheckSummary:
    logger.error("source=%s %s", source.id, database_error(exc))
    return CheckSummary(source.id, "failed", 0, f"database: {database_error(exc)}", elapsed_ms)


def _release_lease(engine: Engine, source: Source, worker: str) -> None:
    try:
        store.release_lease(engine, source.id, worker=worker)
    except SQLAlchemyError as exc:  # the lease then expires by itself
        logger.warning("source=%s could not release its lease: %s", source.id,
                       database_error(exc))


def renormalise(watchlist: Watchlist, *, engine: Engine) -> int:
    """Rebuild each source's current version from its stored snapshot with today's normaliser and
    config, as a silent rebaseline: no Change, no Alert. Returns how many versions were rebuilt.

    Used after NORMALISER_VERSION changes, so improved text extraction never reads as a change
    in the documents (Open Terms Archive's "technical upgrade")."""
    rebuilt = 0
    for source in watchlist.sources:
        with store.session(engine) as s:
            state = s.get(SourceState, source.id)
            current = s.get(Version, state.version_id) if state and state.version_id else None
            if state is None or current is None:
                continue
            try:
                document = normalise.normalise(_result_from(s, current), source)
            except NormaliseError as exc:
                logger.warning("source=%s cannot renormalise: %s", source.id, exc)
                continue
            version_id = store.add_version(s, _version_row(
                source, document, current.url, current.fetched_at, current.snapshot_id))
            state.version_id, state.config_hash = version_id, config_hash(source)
            s.add(state)
            s.commit()
            rebuilt += version_id != current.id
    return rebuilt


def config_hash(source: Source) -> str:
    """What turns the same bytes into different text or findings (selectors, normaliser, quotes):
    when it changes, unchanged bytes are read again."""
    config = {"select": source.select, "drop": list(source.drop), "follow": source.follow,
              "fetch": source.fetch, "normaliser": NORMALISER_VERSION,
              "quotes": [[c.id, c.quote] for c in source.commitments]}
    return store.sha256(json.dumps(config, sort_keys=True))


# --- The check ---------------------------------------------------------------------------------


def _check(run: Run, client: httpx.Client, gate: fetch.HostGate | None) -> CheckSummary:
    source, state = run.source, run.state
    # rebaseline: judge nothing against the old text, what is served now is the baseline
    has_previous = state.version_id is not None and not run.rebaseline
    validators = (fetch.Validators(state.etag, state.last_modified, state.url)
                  if has_previous else None)
    result = fetch.fetch(source, run.watchlist.defaults, client=client, previous=validators,
                         gate=gate, now=run.now)
    if result.not_modified:
        return _record_quiet(run, result, "not_modified")
    same_config = state.config_hash == config_hash(source)
    if has_previous and same_config and store.sha256(result.body) == state.raw_sha256:
        return _record_quiet(run, result, "unchanged")
    # Only a body that changed needs the previous text and the source's history (a 304 or the
    # same bytes must cost as little as possible: bench/README.md). A source without a version
    # has no history: its changes are only ever stored with a version.
    previous, removed, reported_missing = None, set[str](), set[str]()
    if state.version_id is not None:
        with store.session(run.engine) as s:
            previous = s.get(Version, state.version_id) if has_previous else None
            removed = store.removed_sentences(s, source.id)
            reported_missing = store.reported_missing(s, source.id)
    document = normalise.normalise(result, source)
    # A watchlist edit may add quotes: report at once those the page does not contain. (A
    # baseline's own detection already reports every missing quote.)
    missing = ([] if same_config or previous is None
               else _missing_quotes(source, document.text, reported_missing))
    if previous and store.sha256(document.text) == previous.text_sha256 \
            and previous.normaliser_version == NORMALISER_VERSION:
        if not missing:
            return _record_quiet(run, result, "unchanged")
        return _record_version(run, result, document, previous, missing, same_text=True)
    old_text = _comparable_text(run, previous, same_config)
    detection = detect(old_text, document.text, source.commitments, discover=source.discover,
                       removed_before=removed)
    if detection.collapsed:
        raise NormaliseError("collapsed", f"{result.url}: {detection.collapsed}; the previous "
                             "version is kept and compared with the next fetch (if the page "
                             f"changed for good: `commitment-monitor accept {source.id}`)")
    keys = {f.key for f in detection.findings}
    findings = [*detection.findings, *(f for f in missing if f.key not in keys)]
    if any(f.status == "removed" for f in findings):
        findings = relocated(findings, _other_documents(run))
    if any(f.status == "added" for f in findings):
        findings = arrived(findings, _removed_elsewhere(run))
    if run.rebaseline:  # quotes already reported missing are not news
        findings = [f for f in findings if f.key not in reported_missing]
    return _record_version(run, result, document, previous, findings)


def _other_documents(run: Run) -> dict[str, str]:
    """The current texts of the publisher's other watched documents, by name: where a removed
    commitment may have moved."""
    others = _siblings(run)
    return {_name(others[source_id]): text
            for source_id, text in _current_texts(run.engine, others)} if others else {}


def _removed_elsewhere(run: Run) -> dict[str, str]:
    """Sentences the publisher's other watched documents lost within MOVE_WINDOW and do not
    hold again, each with where it was: where an added commitment may have come from."""
    others = _siblings(run)
    if not others:
        return {}
    with store.session(run.engine) as s:
        rows = s.exec(select(Change.source_id, Change.before, Change.detected_at)
                      .where(col(Change.source_id).in_(others), Change.status == "removed",
                             col(Change.before).is_not(None),
                             col(Change.detected_at) >= run.started_at - MOVE_WINDOW)
                      .order_by(col(Change.id)))
        removed = {before: (source_id, detected_at) for source_id, before, detected_at in rows}
    if not removed:
        return {}
    texts = dict(_current_texts(run.engine, others))
    return {before: f"{_name(others[source_id])}, removed {render.when(detected_at)}"
            for before, (source_id, detected_at) in removed.items()
            if before not in texts.get(source_id, "")}


def _current_texts(engine: Engine, source_ids: Iterable[str]) -> list[tuple[str, str]]:
    with store.session(engine) as s:
        return list(s.exec(select(SourceState.source_id, Version.text)
                           .join(Version, col(Version.id) == col(SourceState.version_id))
                           .where(col(SourceState.source_id).in_(list(source_ids)))))


def _siblings(run: Run) -> dict[str, Source]:
    """The publisher's other watched documents, by id."""
    return {source.id: source for source in run.watchlist.sources
            if source.company == run.source.company and source.id != run.source.id}


def _name(source: Source) -> str:
    return f"{source.company} · {source.title}"


def _missing_quotes(source: Source, text: str, reported: set[str]) -> list[Finding]:
    """Configured quotes not in the text and never reported missing before (new or edited)."""
    baseline = detect(None, text, source.commitments)
    return [f for f in baseline.findings if f.status == "not_found" and f.key not in reported]


def _comparable_text(run: Run, previous: Version | None, same_config: bool) -> str | None:
    """The previous text as today's config would read it, so a select/drop edit or a new
    normaliser is never mistaken for a change in the document. None means baseline."""
    if previous is None:
        return None
    if same_config and previous.normaliser_version == NORMALISER_VERSION:
        return previous.text
    with store.session(run.engine) as s:
        try:
            return normalise.normalise(_result_from(s, previous), run.source).text
        except NormaliseError:
            return previous.text


def _result_from(s: Session, version: Version) -> FetchResult:
    """A stored snapshot dressed as a fetch result, to normalise it again."""
    snapshot = s.get(Snapshot, version.snapshot_id)
    assert snapshot is not None  # a version always points at its snapshot (foreign key)
    return FetchResult(url=version.url, status=200, body=store.snapshot_body(snapshot),
                       media_type=snapshot.media_type, fetched_at=version.fetched_at,
                       elapsed_ms=0, charset=snapshot.charset)


# --- Persisting: one transaction per check -----------------------------------------------------


def _save_released(s: Session, state: SourceState) -> None:
    """Write back the state ``store.lock_state`` read, with the lease released: the caller's
    commit stores the check and frees the source at once."""
    state.lease_owner, state.lease_expires_at = None, None
    store.save_state(s, state)


def _lost_lease(run: Run) -> CheckSummary:
    return CheckSummary(run.source.id, "skipped", 0, "lease lost to another worker; its check "
                        "counts", run.elapsed_ms())


def _record_quiet(run: Run, result: FetchResult, outcome: str) -> CheckSummary:
    """A check that found nothing new (304, same bytes, or only cosmetic differences)."""
    if not (run.state.health_alerted or run.state.failing_streak
            or _new_document(result, run.state)):
        return _record_routine(run, result, outcome)
    to = notify.targets(run.watchlist, run.source)  # a recovery or new-version alert is due
    with store.session(run.engine) as s:
        state = store.lock_state(s, run.source.id, run.worker)
        if state is None:
            return _lost_lease(run)
        check = _add_check(s, run, result, outcome, version_id=state.version_id)
        _succeeded(s, run, state, result, check, to)
        if not result.not_modified:
            state.raw_sha256, state.config_hash = store.sha256(result.body), config_hash(run.source)
        _save_released(s, state)
        s.commit()
    return CheckSummary(run.source.id, outcome, 0, None, check.duration_ms)


def _record_routine(run: Run, result: FetchResult, outcome: str) -> CheckSummary:
    """The common case, a healthy source with nothing new: one UPDATE, one INSERT, one commit
    (most checks of a large watchlist end here: bench/README.md)."""
    duration_ms = run.elapsed_ms()
    state: dict[str, object] = {"last_checked_at": run.started_at, "last_outcome": outcome,
                                "last_error": None, "url": result.url}
    if not result.not_modified:
        state |= {"etag": result.etag, "last_modified": result.last_modified,
                  "raw_sha256": store.sha256(result.body), "config_hash": config_hash(run.source)}
    check = {"source_id": run.source.id, "started_at": run.started_at, "duration_ms": duration_ms,
             "url": result.url, "http_status": result.status, "bytes": len(result.body),
             "outcome": outcome, "version_id": run.state.version_id}
    if not store.record_quiet_check(run.engine, run.worker, state, check):
        return _lost_lease(run)
    return CheckSummary(run.source.id, outcome, 0, None, duration_ms)


def _record_version(run: Run, result: FetchResult, document: Document, previous: Version | None,
                    findings: Sequence[Finding], *, same_text: bool = False) -> CheckSummary:
    """A new text (or, with ``same_text``, new findings on the current one): store the snapshot,
    the version, the changes and their alert, all at once.

    Everything that costs CPU (compressing, hashing, rendering) is done before the transaction:
    on SQLite a writer holds the whole database's lock until it commits."""
    outcome = "unchanged" if same_text else "changed" if previous else "baseline"
    new_text = not (same_text and previous)  # an unchanged text adds no snapshot and no version
    packed = store.pack_snapshot(result.body, result.media_type, result.fetched_at,
                                 result.charset) if new_text else None
    version_row = _version_row(run.source, document, result.url, result.fetched_at) \
        if new_text else {}
    changes = [_change(run, f, previous, result) for f in findings]
    subject = render.changes_subject(changes, run.source) if changes else ""
    to = notify.targets(run.watchlist, run.source) if changes or _announces(run.state, result) \
        else []
    source_config = config_hash(run.source)
    with store.session(run.engine) as s:
        state = store.lock_state(s, run.source.id, run.worker)
        if state is None:
            return _lost_lease(run)
        if packed is not None:
            snapshot_id, digest = store.store_snapshot(s, packed), packed["sha256"]
            version_id = store.add_version(s, version_row | {"snapshot_id": snapshot_id})
            old_digest = _snapshot_sha(s, previous) if previous and changes else None
        else:
            assert previous is not None and previous.id is not None
            snapshot_id, digest = previous.snapshot_id, _snapshot_sha(s, previous)
            version_id, old_digest = previous.id, digest
        check = _add_check(s, run, result, outcome, version_id=version_id,
                           snapshot_id=snapshot_id)
        if changes:
            alert = _add_alert(s, run, "changes", subject, None, check, to,
                               kinds={change.status for change in changes})
            for change in changes:
                change.alert_id, change.check_id, change.new_version_id = (
                    alert.id, check.id, version_id)
                change.old_snapshot, change.new_snapshot = old_digest, digest
                s.add(change)
        _succeeded(s, run, state, result, check, to)
        state.version_id, state.raw_sha256, state.config_hash = version_id, digest, source_config
        _save_released(s, state)
        s.commit()
    ops.observe_changes(change.status for change in changes)
    return CheckSummary(run.source.id, outcome, len(changes), None, check.duration_ms)


def _record_failure(run: Run, error: SourceError) -> CheckSummary:
    """A failed check: a health event that never touches the commitments or the current version."""
    message = f"{error.kind}: {error}"
    threshold = run.watchlist.defaults.failures_before_alert
    alerts = run.state.failing_streak + 1 >= threshold and not run.state.health_alerted
    to = notify.targets(run.watchlist, run.source) if alerts else []
    with store.session(run.engine) as s:
        state = store.lock_state(s, run.source.id, run.worker)
        if state is None:
            return _lost_lease(run)
        check = store.add_check(s, {
            "source_id": run.source.id, "started_at": run.started_at,
            "duration_ms": run.elapsed_ms(), "url": state.url or run.source.url,
            "http_status": getattr(error, "status", None), "bytes": 0, "outcome": "failed",
            "error_kind": error.kind, "error": str(error)})
        state.failing_streak += 1
        state.failing_since = state.failing_since or run.started_at
        state.last_checked_at, state.last_outcome, state.last_error = (
            run.started_at, "failed", message)
        if state.failing_streak >= threshold and not state.health_alerted:
            _add_alert(s, run, "health_failing",
                       render.health_subject("health_failing", run.source, error.kind),
                       f"{state.failing_streak} checks in a row failed since "
                       f"{render.when(state.failing_since)}. Last error: {message}", check, to)
            state.health_alerted = True
        _save_released(s, state)
        s.commit()
    return CheckSummary(run.source.id, "failed", 0, message, check.duration_ms)


def _succeeded(s: Session, run: Run, state: SourceState, result: FetchResult, check: Check,
               to: Sequence[notify.Target]) -> None:
    """Update the source's memory after a successful fetch; report a recovery once, and a
    document that `follow` found at a new address (even when its text is the same)."""
    if state.version_id and _new_document(result, state):
        _add_alert(s, run, "new_version", render.health_subject(
            "new_version", run.source, "new version published"),
            f"A new version was published at {result.url} (it was {state.url}).", check, to)
    if state.health_alerted:
        _add_alert(s, run, "health_recovered",
                   render.health_subject("health_recovered", run.source, "checks succeed again"),
                   f"Checks succeed again after {state.failing_streak} failures in a row since "
                   f"{render.when(state.failing_since)} (last error: {state.last_error}).", check,
                   to)
    state.failing_streak, state.failing_since, state.health_alerted = 0, None, False
    state.last_checked_at, state.last_outcome, state.last_error = (
        run.started_at, check.outcome, None)
    state.url = result.url
    if not result.not_modified:
        state.etag, state.last_modified = result.etag, result.last_modified


def _announces(state: SourceState, result: FetchResult) -> bool:
    """Whether ``_succeeded`` will add an alert: a recovery, or a new document."""
    return state.health_alerted or bool(state.version_id and _new_document(result, state))


def _new_document(result: FetchResult, state: SourceState) -> bool:
    """`follow` led to another document than last time: the publisher released a new version."""
    return bool(result.landing_url and state.url and result.url != state.url)


def _add_check(s: Session, run: Run, result: FetchResult, outcome: str, *,
               version_id: int | None, snapshot_id: int | None = None) -> Check:
    return store.add_check(s, {
        "source_id": run.source.id, "started_at": run.started_at,
        "duration_ms": run.elapsed_ms(), "url": result.url, "http_status": result.status,
        "bytes": len(result.body), "outcome": outcome, "snapshot_id": snapshot_id,
        "version_id": version_id})


def _add_alert(s: Session, run: Run, kind: str, subject: str, detail: str | None,
               check: Check, to: Sequence[notify.Target], kinds: Collection[str] = ()) -> Alert:
    """Store an alert for those of the targets the caller resolved before its transaction began
    (a label may load apprise's plugins: 0.2-0.5 s that must not hold the write lock) whose
    channels want it. Resolving them here is only a safety net, for an alert the state read at
    the lease did not foresee. ``kinds``: a changes alert's statuses."""
    alert = Alert(source_id=run.source.id, check_id=check.id, kind=kind, subject=subject,
                  detail=detail, created_at=run.started_at)
    to = notify.addressed(run.watchlist, run.source,
                          to or notify.targets(run.watchlist, run.source),
                          kinds or {notify.HEALTH_KINDS[kind]})
    return notify.add_alert(s, alert, to, now=run.started_at, watchlist=run.watchlist)


def _version_row(source: Source, document: Document, url: str, fetched_at: datetime,
                 snapshot_id: int | None = None) -> dict[str, object]:
    """A version row for ``store.add_version`` (which finds the row when the text is not new)."""
    return {"source_id": source.id, "snapshot_id": snapshot_id, "text": document.text,
            "text_sha256": store.sha256(document.text), "normaliser_version": NORMALISER_VERSION,
            "url": url, "fetched_at": fetched_at}


def _snapshot_sha(s: Session, version: Version) -> str:
    """The sha256 of a version's snapshot, without reading its body."""
    return s.exec(select(Snapshot.sha256).where(Snapshot.id == version.snapshot_id)).one()


def _change(run: Run, finding: Finding, previous: Version | None,
            result: FetchResult) -> Change:
    """A change row, but for the ids and digests the check's transaction fills in."""
    return Change(
        source_id=run.source.id, commitment_id=finding.commitment_id,
        commitment_title=finding.commitment_title, key=finding.key, status=finding.status,
        reason=finding.reason, before=finding.before, after=finding.after,
        diff=json.dumps([list(pair) for pair in finding.diff]),
        section_before=finding.section_before, section_after=finding.section_after,
        old_version_id=previous.id if previous else None,
        old_fetched_at=previous.fetched_at if previous else None,
        new_fetched_at=result.fetched_at, url=result.url, detected_at=run.started_at)
