"""The daemon over many cycles: memory and CPU of `commitment-monitor run`, beside urlwatch run
from cron on the same pages.

    .venv/bin/python bench/soak.py                                # 300 sources, every 60 s, 15 min
    .venv/bin/python bench/soak.py --sources 1000 --every 120 --minutes 30

A site of N generated policy pages (bench/policysite.py, as bench/cycle.py serves them) is on
127.0.0.1. `commitment-monitor run` watches it with `every` set to EVERY seconds: a fresh SQLite
file, `discover`, one quoted commitment per page, alerts mailed to a local SMTP server. At each
EVERY, 1% of the pages get a substantive edit and the pages edited the time before get their
text back, so each cycle has changes to find and to mail. urlwatch runs as its users run it,
started by "cron" once per EVERY on the same pages (its CPU from wait4()).

Every 5 s the daemon's RSS and CPU are read from /proc and its stored checks counted (kept in
bench/out/soak/samples.csv). Reported:
RSS after the first cycle, its peak, at the end, and its growth per hour over the steady part
(from the end of the second cycle); the daemon's CPU per check in the steady part, everything it
does included (scheduling, deliveries, watchlist polling); urlwatch's CPU per source per run
(its first run, the baseline, left out); checks, changes and e-mails. The daemon is the product
as deployed, so this is the like-for-like CPU comparison with urlwatch from cron.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import policysite
import yaml
from aiosmtpd.controller import Controller
from cycle import (
    OUT,
    README,
    URLWATCH_CONFIG,
    Setup,
    fresh_dir,
    install_urlwatch,
    machine,
    run_urlwatch,
    urlwatch_jobs,
    watchlist,
    write_results,
)
from policysite import Site

SAMPLE_EVERY = 5.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    at: float      # seconds since the daemon started
    rss_mb: float
    cpu: float     # the daemon's user + system seconds so far
    checks: int    # check rows stored so far


class Inbox:
    """Counts the e-mails a local SMTP server receives (aiosmtpd, in a thread of this process)."""

    def __init__(self) -> None:
        self.count = 0
        with socket.socket() as probe:  # aiosmtpd's readiness probe cannot start on port 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"

    def stop(self) -> None:
        self.controller.stop()


def main() -> int:
    args = parse_args()
    setup = Setup(sizes=[args.sources], repeat=1, changed=args.changed,
                  pdf_fraction=args.pdf_fraction, seed=args.seed, urlwatch=not args.no_urlwatch,
                  command="")
    if setup.urlwatch and not install_urlwatch(setup):
        setup.pdf_fraction = 0.0
    pages = policysite.plan(args.sources, pdf_fraction=setup.pdf_fraction, seed=args.seed)
    site = Site(OUT / "site", pages, args.seed)
    site.generate()
    site.reset()
    site.start()
    inbox = Inbox()
    workdir = fresh_dir(OUT / "soak")
    try:
        report = soak(args, setup, site, inbox, workdir)
    finally:
        inbox.stop()
        site.stop()
    print(report)
    if args.readme:
        write_results(f"soak sources={args.sources}", report)
        print(f"results written to {README.relative_to(README.parents[1])}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--every", type=int, default=60, help="check interval, seconds")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--changed", type=float, default=0.01,
                        help="fraction of the pages edited each interval (default 0.01)")
    parser.add_argument("--pdf-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-urlwatch", action="store_true")
    parser.add_argument("--no-readme", dest="readme", action="store_false")
    return parser.parse_args()


def soak(args: argparse.Namespace, setup: Setup, site: Site, inbox: Inbox,
         workdir: Path) -> str:
    database = workdir / "monitor.db"
    watched = watchlist(site, inbox.port)
    watched["defaults"] |= {"every": f"{args.every}s"}  # type: ignore[operator]
    (workdir / "watchlist.yaml").write_text(yaml.safe_dump(watched, sort_keys=False))
    (workdir / "urls.yaml").write_text(urlwatch_jobs(site))
    (workdir / "urlwatch.yaml").write_text(yaml.safe_dump(URLWATCH_CONFIG))
    log = (workdir / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--watchlist", str(workdir / "watchlist.yaml"),
         "--database", f"sqlite:///{database}", "run"], stdout=log, stderr=subprocess.STDOUT,
        cwd=workdir)
    started = time.monotonic()
    samples: list[Sample] = []
    urlwatch_cpu: list[float] = []
    rng = random.Random(f"{args.seed}:soak")
    cycle = 0
    try:
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited {daemon.returncode}; see {log.name}")
            if elapsed >= cycle * args.every:
                site.undo_edits()
                site.edit(args.changed, rng)
                if setup.urlwatch:
                    measure = run_urlwatch(workdir, cycle, limit=120 + len(site.pages) * 0.5)
                    urlwatch_cpu.append(measure.cpu)
                cycle += 1
            samples.append(sample(daemon.pid, database, time.monotonic() - started))
            time.sleep(SAMPLE_EVERY - (time.monotonic() - started) % SAMPLE_EVERY)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=120)
        log.close()
    if code != 0:
        raise RuntimeError(f"the daemon exited {code} on SIGTERM; see {log.name}")
    with (workdir / "samples.csv").open("w") as out:  # to plot, or to look at the growth
        out.write("seconds,rss_mb,cpu_seconds,checks\n")
        out.writelines(f"{s.at:.1f},{s.rss_mb:.1f},{s.cpu:.2f},{s.checks}\n" for s in samples)
    spacing = spacing_effect(site, workdir, gap=daemon_gap(args))
    return render(args, setup, samples, urlwatch_cpu, database, inbox.count, spacing)


def sample(pid: int, database: Path, at: float) -> Sample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if line.startswith("VmRSS:"))
    return Sample(at, rss_kb / 1024, cpu, count_checks(database))


def count_checks(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute('SELECT count(*) FROM "check"').fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def table_count(database: Path, table: str, where: str = "") -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return conn.execute(f'SELECT count(*) FROM "{table}" {where}').fetchone()[0]


def daemon_gap(args: argparse.Namespace) -> float:
    """The daemon's mean pause between two checks (capped, to bound the measurement)."""
    return min(args.every / args.sources, 0.2)


def spacing_effect(site: Site, workdir: Path, gap: float, count: int = 100) -> tuple[float, float]:
    """Thread CPU (ms) of one 304 check run back to back, and with ``gap`` seconds of sleep
    between checks as the daemon spreads them: the same code, in this process."""
    from monitor import fetch, pipeline, store
    from monitor.watchlist import parse

    pages = [page for page in site.pages if page.kind == "html"][:count]
    watched = parse(yaml.safe_dump(watchlist(site, 9)))  # (port 9: nothing is mailed)
    sources = [watched.source(page.name.replace(".", "-")) for page in pages]
    engine = store.make_engine(f"sqlite:///{workdir / 'spacing.db'}")
    store.create_schema(engine)
    cpu: list[float] = []
    with fetch.make_client(watched.defaults) as client:
        gate = fetch.HostGate(watched.defaults.host_gap)
        for pause in (0.0, 0.0, gap):  # baselines first, then two passes of 304s
            spent = 0.0
            for source in sources:
                started = time.thread_time()
                pipeline.check_source(source, watched, engine=engine, client=client, gate=gate)
                spent += time.thread_time() - started
                time.sleep(pause)
            cpu.append(spent / len(sources) * 1000)
    engine.dispose()
    return cpu[1], cpu[2]


def growth_per_hour(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, MB per hour."""
    if len(samples) < 2:
        return float("nan")
    return statistics.linear_regression([s.at for s in samples],
                                        [s.rss_mb for s in samples]).slope * 3600


def render(args: argparse.Namespace, setup: Setup, samples: list[Sample],
           urlwatch_cpu: list[float], database: Path, emails: int,
           spacing: tuple[float, float]) -> str:
    n = args.sources
    after_first = [s for s in samples if s.at >= args.every]
    steady = [s for s in samples if s.at >= 2 * args.every]
    second_half = samples[len(samples) // 2:]
    quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3, 4)]
    if len(steady) < 2 or steady[-1].checks == steady[0].checks:
        raise RuntimeError("too short to have a steady part: give more --minutes")
    first, last = steady[0], steady[-1]
    per_check_ms = (last.cpu - first.cpu) / (last.checks - first.checks) * 1000
    cycles = (last.at - first.at) / args.every
    failed = table_count(database, "check", "WHERE outcome = 'failed'")
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}",
        f"Command: `.venv/bin/python bench/soak.py --sources {n} --every {args.every} "
        f"--minutes {args.minutes:g}`",
        f"Pages: 20 KB-1 MB, {setup.pdf_fraction:.0%} PDFs, all on 127.0.0.1; "
        f"{args.changed:.0%} edited and the previous edits undone every {args.every} s; "
        f"load average at the end {os.getloadavg()[0]:.2f}.",
        "",
        f"- daemon: {samples[-1].checks:,} checks in {samples[-1].at / 60:.1f} min, "
        f"{table_count(database, 'change'):,} changes, {emails} e-mails received, "
        f"{failed} failed checks",
        f"- RSS: {after_first[0].rss_mb:.0f} MB after the first cycle; "
        + ", ".join(f"{q.rss_mb:.0f} MB at {q.at / 60:.0f} min" for q in quarters)
        + f"; peak {max(s.rss_mb for s in samples):.0f} MB; "
        f"{growth_per_hour(second_half):+.1f} MB per hour over the second half",
        f"- daemon CPU: {per_check_ms:.2f} ms per check over the last {cycles:.0f} cycles "
        f"({last.checks - first.checks:,} checks), everything it does included",
        f"- a 304 check in this process: {spacing[0]:.2f} ms of thread CPU back to back, "
        f"{spacing[1]:.2f} ms with {daemon_gap(args) * 1000:.0f} ms of sleep between "
        "checks as the daemon spreads them (the same code, on cold caches)",
    ]
    if len(urlwatch_cpu) > 1:
        per_source = statistics.median(urlwatch_cpu[1:]) / n * 1000
        lines.append(f"- urlwatch from cron: {per_source:.2f} ms CPU per source per run "
                     f"(median of {len(urlwatch_cpu) - 1} runs after its first), "
                     f"{per_source / per_check_ms:.1f}x the daemon's per check")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
