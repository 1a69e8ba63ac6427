"""The daemon: APScheduler runs each source on its own interval, delivers the outbox, and follows
edits to the watchlist file.

The jobs live in memory and are rebuilt from the watchlist at start; when a source is due comes
from the store (SourceState.last_checked_at), so a restart continues where it stopped: a source
checked a moment ago waits for its interval, overdue and new ones are spread over a short window
instead of firing all at once. Two checks of one source never overlap (max_instances=1 here, and
the pipeline's lease across processes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from monitor import fetch, notify, ops, pipeline, store
from monitor.store import as_utc
from monitor.watchlist import Source, Watchlist, WatchlistFile

logger = logging.getLogger(__name__)

FIRST_DELAY = timedelta(seconds=1)
"""How soon after start (or after a reload adds it) the first due source is checked."""
CATCH_UP_STEP = timedelta(seconds=2)
"""Gap between two due sources at start, so a restart after downtime is not a burst..."""
CATCH_UP_WINDOW = timedelta(seconds=60)
"""...but all of them have started within this window, however many there are."""
DELIVER_EVERY = 5.0
"""Alerts stored by a check go out within this many seconds (an idle poll is one small query)."""
RELOAD_EVERY = 2.0
"""How often the watchlist file's mtime and size are looked at."""
THREADS = 4
"""Checks wait on the network, not the CPU; the per-host gate keeps them polite to each site."""
THIN_EVERY = timedelta(hours=6)
"""How often quiet checks older than defaults.keep_checks are thinned (store.thin_checks)..."""
THIN_DELAY = timedelta(minutes=5)
"""...the first time a little after start, once the overdue checks have gone out."""
DELIVER_JOB = "deliver"
RELOAD_JOB = "reload"
THIN_JOB = "thin"


def first_runs(intervals: Mapping[str, timedelta], last_checked: Mapping[str, datetime],
               now: datetime, *, delay: timedelta = FIRST_DELAY, step: timedelta = CATCH_UP_STEP,
               window: timedelta = CATCH_UP_WINDOW) -> dict[str, datetime]:
    """When each source should next be checked, given when it was last checked.

    A source whose interval has not elapsed keeps its rhythm (last check + interval). The rest
    (never checked first, in watchlist order, then the most overdue) start ``delay`` from now,
    ``step`` apart, squeezed so the last one starts within ``window``.
    """
    runs: dict[str, datetime] = {}
    behind: list[tuple[int, datetime, int, str]] = []
    for order, (source_id, interval) in enumerate(intervals.items()):
        last = last_checked.get(source_id)
        if last is None:
            behind.append((0, now, order, source_id))
        elif last + interval > now:
            runs[source_id] = last + interval
        else:
            behind.append((1, last + interval, order, source_id))
    gap = min(step, (window - delay) / max(len(behind), 1))
    for position, (*_, source_id) in enumerate(sorted(behind)):
        runs[source_id] = now + delay + position * gap
    return runs


class Service:
    """The running monitor: start() schedules everything, reload() applies an edited watchlist,
    stop() lets the checks in flight finish.

    Jobs look the source up in the current watchlist when they run, so an edit to a source's
    URL or selectors applies at its next check without touching its schedule.
    """

    def __init__(self, path: Path, engine: Engine, *, worker: str | None = None) -> None:
        self.path = Path(path)
        self.engine = engine
        self.worker = worker or notify.WORKER
        self.watchlist: Watchlist | None = None
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=THREADS)}, timezone=UTC)
        self._lock = threading.Lock()  # one reload at a time (the job, or a caller)
        self._stopping = threading.Event()
        self._file = WatchlistFile(self.path)
        self._client: httpx.Client | None = None
        self._retired: list[httpx.Client] = []
        self._gate: fetch.HostGate | None = None
        self._thinned_before: datetime | None = None  # the days before it are thinned

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, *, paused: bool = False) -> Watchlist:
        """Load the watchlist (WatchlistError if it is broken) and start scheduling.

        ``paused`` plans every job but runs none, to inspect the plan (next_runs()).
        """
        with self._lock:
            watchlist = self._file.load()
            self._use(watchlist)
        for job_id, function, seconds in ((DELIVER_JOB, self._deliver, DELIVER_EVERY),
                                          (RELOAD_JOB, self.reload, RELOAD_EVERY)):
            self._scheduler.add_job(function, IntervalTrigger(seconds=seconds, timezone=UTC),
                                    id=job_id, max_instances=1, coalesce=True)
        self._scheduler.add_job(self.thin, IntervalTrigger(seconds=THIN_EVERY.total_seconds(),
                                                           timezone=UTC),
                                id=THIN_JOB, next_run_time=store.utcnow() + THIN_DELAY,
                                max_instances=1, coalesce=True)
        self._scheduler.start(paused=paused)
        return watchlist

    def stop(self) -> None:
        """Stop scheduling and wait for the checks in flight to finish (their results are kept).

        Runs already queued for a worker thread but not started are dropped: the pool would
        otherwise run them all before letting the process exit."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        for client in (*self._retired, self._client):
            if client is not None:
                client.close()

    # --- what is scheduled ----------------------------------------------------------------------

    def next_runs(self) -> dict[str, datetime]:
        """Source id -> its next scheduled check."""
        return {job.args[0]: job.next_run_time for job in self._scheduler.get_jobs()
                if job.id.startswith("check:") and job.next_run_time is not None}

    # --- reload ---------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Apply the watchlist file if it changed since the last look; True when applied.

        A broken edit is logged, problem by problem, once per distinct content, and the last
        good watchlist keeps running.
        """
        with self._lock:
            watchlist = self._file.reload()
            if watchlist is None:
                return False
            self._use(watchlist)
            return True

    def _use(self, new: Watchlist) -> None:
        """Make ``new`` the current watchlist: add, remove and reschedule source jobs."""
        old, self.watchlist = self.watchlist, new
        if old is None or old.defaults != new.defaults:
            self._renew_client(new)
        wanted = {source.id: _trigger_settings(new, source) for source in new.sources}
        current = {} if old is None else {
            source.id: _trigger_settings(old, source) for source in old.sources}
        for source_id in current.keys() - wanted.keys():
            self._scheduler.remove_job(f"check:{source_id}")
        changed = {source_id: settings for source_id, settings in wanted.items()
                   if current.get(source_id) != settings}
        runs = first_runs({source_id: interval for source_id, (interval, _) in changed.items()},
                          self._last_checked(changed), store.utcnow())
        for source_id, (interval, jitter) in changed.items():
            self._schedule(source_id, interval, jitter, runs[source_id])
        if old is not None:
            logger.info("watchlist %s reloaded: %d sources (%d added, %d removed, %d rescheduled)",
                        self.path, len(wanted), len(wanted.keys() - current.keys()),
                        len(current.keys() - wanted.keys()),
                        len(changed.keys() & current.keys()))

    def _schedule(self, source_id: str, interval: timedelta, jitter: float,
                  first: datetime) -> None:
        seconds = interval.total_seconds()
        self._scheduler.add_job(
            self.check, IntervalTrigger(seconds=seconds, start_date=first, jitter=jitter or None,
                                         timezone=UTC),
            args=[source_id], id=f"check:{source_id}", name=f"check {source_id}",
            next_run_time=first, max_instances=1, coalesce=True,
            misfire_grace_time=max(1, int(seconds)), replace_existing=True)
        logger.info("next check of %s at %s (every %s)", source_id, _utc_text(first), interval)

    def _last_checked(self, source_ids: Iterable[str]) -> dict[str, datetime]:
        wanted = set(source_ids)
        with store.session(self.engine) as session:
            return {state.source_id: as_utc(state.last_checked_at)
                    for state in store.source_states(session)
                    if state.source_id in wanted and state.last_checked_at is not None}

    def _renew_client(self, watchlist: Watchlist) -> None:
        """A new HTTP client and host gate for new defaults; checks in flight keep the old ones."""
        if self._client is not None:
            self._retired.append(self._client)
        self._client = fetch.make_client(watchlist.defaults)
        self._gate = fetch.HostGate(watchlist.defaults.host_gap)

    # --- jobs -----------------------------------------------------------------------------------

    def check(self, source_id: str) -> bool:
        """What a source's job runs: check it now, unless another process (a replica, or a
        manual `check`) did within half its interval; then this run is skipped and the next
        one follows that check. True when checked."""
        if self._stopping.is_set():
            return False
        watchlist, client, gate = self.watchlist, self._client, self._gate
        assert watchlist is not None and client is not None
        try:
            source = watchlist.source(source_id)
        except KeyError:  # removed by a reload while this run waited for a thread
            return False
        interval = watchlist.interval(source)
        last = store.last_checked_at(self.engine, source_id)
        if last is not None and store.utcnow() - last < interval / 2:
            self._scheduler.modify_job(f"check:{source_id}", next_run_time=last + interval)
            logger.info("source=%s was checked elsewhere at %s; next check at %s", source_id,
                        _utc_text(last), _utc_text(last + interval))
            return False
        pipeline.check_source(source, watchlist, engine=self.engine, client=client, gate=gate,
                              worker=self.worker)  # logs its one line per check
        return True

    def _deliver(self) -> None:
        assert self.watchlist is not None
        if self._stopping.is_set():
            return
        ops.heartbeat()  # this job runs every few seconds: /healthz watches that it still does
        report = notify.deliver_pending(self.engine, self.watchlist, worker=self.worker,
                                        limit=notify.DELIVER_BATCH)
        if report.sent or report.failed or report.expired:
            logger.info("alerts: %d sent, %d failed, %d expired", report.sent, report.failed,
                        report.expired)

    def thin(self) -> int:
        """Thin the quiet checks older than the watchlist's keep_checks; how many went."""
        assert self.watchlist is not None
        keep = self.watchlist.defaults.keep_checks
        if keep is None or self._stopping.is_set():
            return 0
        before = store.utcnow() - keep
        deleted = store.thin_checks(self.engine, before, since=self._thinned_before,
                                    keep_going=lambda: not self._stopping.is_set())
        if not self._stopping.is_set():
            self._thinned_before = store.start_of_day(before)
        if deleted:
            logger.info("thinned %d quiet checks older than %s", deleted, keep)
        return deleted


def _trigger_settings(watchlist: Watchlist, source: Source) -> tuple[timedelta, float]:
    """What a source's job depends on: its interval, and its jitter in seconds."""
    interval = watchlist.interval(source)
    return interval, interval.total_seconds() * watchlist.defaults.jitter


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


