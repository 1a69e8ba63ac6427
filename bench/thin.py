"""What thinning old quiet checks costs and saves (store.thin_checks, the daemon's `thin` job).

    .venv/bin/python bench/thin.py                         # 1,000 hourly sources, a year
    .venv/bin/python bench/thin.py --sources 5000 --days 365

Fills a fresh SQLite file with the check rows of SOURCES sources checked hourly: DAYS days
already thinned by earlier runs (the first and last quiet check of each source's day), then
the 31 days since, hourly, and ALERTS alerts and as many changes citing checks (deleting a
check makes the database look for them). Then times the daemon's thinning runs: its first
(one whole day has become older than keep_checks), its next (nothing new; it remembers what
it thinned) and a restarted daemon's first (nothing new, every day read again), with the
longest single delete (on SQLite it holds the write lock every check waits for), and prints the
file size before and after, with the size the same days would take unthinned.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor import store  # noqa: E402

KEEP = timedelta(days=30)


def fill(path: Path, sources: int, days: int, alerts: int, now: datetime) -> None:
    """Rows straight through sqlite3: the ORM would take minutes for millions of rows."""
    engine = store.make_engine(f"sqlite:///{path}")
    store.create_schema(engine)
    engine.dispose()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    recent = today - KEEP - timedelta(days=1)  # one whole day is due for thinning
    with sqlite3.connect(path) as conn:
        for day in range(days, 0, -1):
            start = recent - timedelta(days=day)
            _insert(conn, sources, [start + timedelta(hours=1), start + timedelta(hours=23)])
        hours = int((now - recent) / timedelta(hours=1))
        for hour in range(hours):
            _insert(conn, sources, [recent + timedelta(hours=hour)])
        _cite(conn, alerts)


def _cite(conn: sqlite3.Connection, count: int) -> None:
    """Alerts and changes, each pointing at a check (spread over the table): a year of them.
    Deleting a check makes the database look for rows that cite it."""
    last = conn.execute('SELECT max(id) FROM "check"').fetchone()[0]
    step = max(1, last // max(count, 1))
    conn.executemany(
        "INSERT INTO alert (source_id, check_id, kind, subject, created_at) "
        "VALUES ('source-00000', ?, 'changes', 'x', '2026-01-01 00:00:00.000000')",
        ((n * step + 1,) for n in range(count)))
    conn.executemany(
        "INSERT INTO change (source_id, check_id, key, status, reason, url, detected_at) "
        "VALUES ('source-00000', ?, 'k', 'weakened', 'x', 'u', '2026-01-01 00:00:00.000000')",
        ((n * step + 1,) for n in range(count)))


def _insert(conn: sqlite3.Connection, sources: int, times: list[datetime]) -> None:
    conn.executemany(
        'INSERT INTO "check" (source_id, started_at, duration_ms, url, http_status, bytes, '
        "outcome) VALUES (?, ?, 12, 'https://example.org/policy', 304, 0, 'not_modified')",
        ((f"source-{n:05d}", at.strftime("%Y-%m-%d %H:%M:%S.%f"))
         for at in times for n in range(sources)))


def time_deletes(engine: Engine) -> list[float]:
    """The wall time of every DELETE the engine runs, its commit included: how long each held
    SQLite's write lock."""
    durations: list[float] = []
    started: list[float] = []

    def before(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE"):
            started.append(time.perf_counter())

    def commit(_conn) -> None:  # type: ignore[no-untyped-def]
        if started:
            durations.append(time.perf_counter() - started.pop())

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", commit)
    return durations


def size_mb(path: Path) -> float:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, page = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * page / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365, help="days of history already thinned")
    parser.add_argument("--alerts", type=int, default=10_000,
                        help="alerts, and as many changes, citing checks")
    args = parser.parse_args()
    now = store.utcnow()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.db"
        started = time.perf_counter()
        fill(path, args.sources, args.days, args.alerts, now)
        with sqlite3.connect(path) as conn:
            rows = conn.execute('SELECT count(*) FROM "check"').fetchone()[0]
        before = size_mb(path)
        print(f"{args.sources:,} sources checked hourly, {args.days} days already thinned: "
              f"{rows:,} check rows, {before:.1f} MB in use (filled in "
              f"{time.perf_counter() - started:.0f} s)")
        engine = store.make_engine(f"sqlite:///{path}")
        deletes = time_deletes(engine)
        thinned = store.start_of_day(now - KEEP)
        for run, since in (("first run (one day due)", None),
                           ("next run of that daemon (nothing due)", thinned),
                           ("first run after a restart (nothing due)", None)):
            started, cpu = time.perf_counter(), time.process_time()
            deletes.clear()
            deleted = store.thin_checks(engine, now - KEEP, since=since)
            longest = f"{max(deletes):.2f} s" if deletes else "none"
            print(f"{run}: deleted {deleted:,} rows in {time.perf_counter() - started:.2f} s "
                  f"wall, {time.process_time() - cpu:.2f} s CPU; {len(deletes)} deletes, the "
                  f"longest {longest}")
        after = size_mb(path)
        per_row = before * 1e6 / rows
        unthinned = args.sources * 24 * (args.days + 31) * per_row / 1e6
        print(f"in use after: {after:.1f} MB; the same {args.days + 31} days unthinned: "
              f"{unthinned:,.0f} MB ({per_row:.0f} B per check row)")
        engine.dispose()
    print(f"(Python {sys.version.split()[0]}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
