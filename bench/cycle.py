"""A full check cycle of Commitment Monitor, side by side with urlwatch, as the watchlist grows.

    .venv/bin/python bench/cycle.py                            # N = 100 and 1,000; 3 repeats
    .venv/bin/python bench/cycle.py --sizes 5000 --repeat 1    # the 5,000-source run

For each N, a site of N generated policy pages (bench/policysite.py: 20 KB-1 MB, 5% PDFs) is served
on 127.0.0.1 by a separate process. Each repeat starts from a fresh database and a fresh urlwatch
cache and runs three passes with both tools on the same pages:

    pass 1  first check of every page
    pass 2  nothing changed (conditional GET answers 304)
    pass 3  5% of the pages got a substantive edit (a "will" became "may", a number tripled)

Ours is ``commitment-monitor check`` (pipeline.check_all + notify.deliver_pending, select/drop,
discover, one quoted commitment per page, alerts mailed to a local SMTP sink); urlwatch 2.29 runs
from its own virtualenv (bench/out/urlwatch-venv) with the equivalent filters (css main with the
same exclusions + html2text; pdf2text for PDFs). Every tool runs as a child process and its CPU and
peak RSS come from wait4() on that child alone, so neither the page server nor the SMTP sink is
counted. Figures are medians over the repeats; the table is printed and written into
bench/README.md with the date, machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import policysite
import yaml
from policysite import Page, Site

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
README = BENCH / "README.md"
URLWATCH_VENV = OUT / "urlwatch-venv"
URLWATCH_PACKAGES = ("urlwatch==2.29", "html2text", "cssselect", "lxml")
PASSES = {1: "first", 2: "unchanged", 3: "5% changed"}
STAGES = ("lease", "fetch", "normalise", "detect", "store", "alert targets", "other")
TOOLS = ("ours", "urlwatch")


@dataclass
class Measure:
    """One run of one tool over the site: what wait4() and the tool's own records say."""

    wall: float
    cpu: float
    rss_mb: float
    storage: int
    changes: int
    failed: int
    startup_cpu: float | None = None
    check_cpu: float | None = None
    deliver_cpu: float | None = None
    normalised: int | None = None
    detected: int | None = None
    rows: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per check outcome: how many, and the CPU seconds their own threads spent."""
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per check outcome, those CPU seconds by stage (lease, fetch, normalise, detect, ...)."""


@dataclass
class Setup:
    sizes: list[int]
    repeat: int
    changed: float
    pdf_fraction: float
    seed: int
    urlwatch: bool
    command: str


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup = Setup(sizes=args.sizes, repeat=args.repeat, changed=args.changed,
                  pdf_fraction=args.pdf_fraction, seed=args.seed,
                  urlwatch=not args.no_urlwatch, command=command_line(argv))
    if setup.urlwatch and not install_urlwatch(setup):
        setup.pdf_fraction = 0.0
    results: dict[tuple[int, str, int], list[Measure]] = defaultdict(list)
    edits: dict[int, list[Page]] = {}
    for n in setup.sizes:
        edits[n] = bench_size(n, setup, results)
    timing = time_one_megabyte_page(setup.seed)
    changed_cost = {n: time_edited_pages(edits[n], setup.seed) for n in setup.sizes}
    report = render_report(setup, results, timing, changed_cost)
    print(report)
    if args.readme:
        write_readme(setup, report)
        print(f"results written to {README.relative_to(BENCH.parent)}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes, default=[100, 1000],
                        help="comma-separated watchlist sizes (default 100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; medians reported")
    parser.add_argument("--changed", type=float, default=0.05,
                        help="fraction of pages edited before pass 3 (default 0.05)")
    parser.add_argument("--pdf-fraction", type=float, default=0.05,
                        help="fraction of pages that are PDFs (default 0.05)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-urlwatch", action="store_true", help="skip the urlwatch side")
    parser.add_argument("--no-readme", dest="readme", action="store_false",
                        help="print the table only; leave bench/README.md alone")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not 0 < args.changed <= 1 or not 0 <= args.pdf_fraction <= 0.5:
        parser.error("--repeat must be >= 1, --changed in (0, 1], --pdf-fraction in [0, 0.5]")
    return args


def sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write sizes like 100,1000,5000") from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return values


def command_line(argv: Sequence[str] | None) -> str:
    words = sys.argv[1:] if argv is None else list(argv)
    return " ".join([".venv/bin/python bench/cycle.py", *words])


# --- urlwatch -------------------------------------------------------------------------------

def install_urlwatch(setup: Setup) -> bool:
    """Create bench/out/urlwatch-venv once; say whether its pdf2text filter works.

    pdftotext builds against poppler (Debian: libpoppler-cpp-dev); without it PDFs are left out
    on both sides, so both tools still do the same work."""
    python = URLWATCH_VENV / "bin" / "python"
    if not (URLWATCH_VENV / "bin" / "urlwatch").exists():
        print(f"installing urlwatch into {URLWATCH_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(URLWATCH_VENV)], check=True)
        pip(python, *URLWATCH_PACKAGES, check=True)
    if pdf_ok(python) or setup.pdf_fraction == 0:
        return True
    pip(python, "pdftotext", check=False)
    if pdf_ok(python):
        return True
    print("urlwatch's pdf2text needs pdftotext, which did not build "
          "(apt-get install libpoppler-cpp-dev pkg-config g++); PDFs are left out on both sides.")
    return False


def pip(python: Path, *packages: str, check: bool) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=check,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not check else None)


def pdf_ok(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import pdftotext"],
                          capture_output=True).returncode == 0


def urlwatch_jobs(site: Site) -> str:
    jobs = []
    for page in site.pages:
        if page.kind == "pdf":
            filters: list[object] = ["pdf2text"]
        else:
            filters = [{"css": {"selector": policysite.SELECT,
                                "exclude": ", ".join(policysite.DROP)}}, "html2text"]
        jobs.append({"name": page.name, "url": site.url(page), "filter": filters})
    return yaml.safe_dump_all(jobs, sort_keys=False)


URLWATCH_CONFIG = {
    "display": {"new": True, "error": True, "unchanged": False, "empty-diff": False},
    "report": {"stdout": {"enabled": True, "color": False},
               "email": {"enabled": False}, "html": {"diff": "unified"}},
}


def run_urlwatch(workdir: Path, pass_no: int, limit: float) -> Measure:
    cache = workdir / "urlwatch-cache.db"
    log = workdir / f"urlwatch-{pass_no}.log"
    argv = [str(URLWATCH_VENV / "bin" / "urlwatch"), "--urls", str(workdir / "urls.yaml"),
            "--config", str(workdir / "urlwatch.yaml"), "--hooks", str(workdir / "hooks.py"),
            "--cache", str(cache)]
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir),
           "XDG_CACHE_HOME": str(workdir)}
    wall, usage, code = run_child(argv, log=log, limit=limit, env=env)
    output = log.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"urlwatch exited {code}; see {log}:\n{output[-2000:]}")
    return Measure(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024,
                   storage=file_size(cache),
                   changes=len(re.findall(r"^\d+\. CHANGED: ", output, re.M)),
                   failed=len(re.findall(r"^\d+\. ERROR: ", output, re.M)))


# --- ours -----------------------------------------------------------------------------------

def watchlist(site: Site, smtp_port: int) -> dict[str, object]:
    sources = []
    for page in site.pages:
        model = policysite.build(page, site.seed)
        source: dict[str, object] = {
            "id": page.name.replace(".", "-"), "company": page.company, "title": page.title,
            "url": site.url(page), "discover": True,
            "commitments": [{"id": "first-will", "title": "First commitment",
                             "quote": policysite.commitment_quote(model)}],
        }
        if page.kind == "html":
            source |= {"select": policysite.SELECT, "drop": list(policysite.DROP)}
        sources.append(source)
    return {
        "defaults": {"every": "6h", "host_gap": "0.001s", "notify": ["bench"]},
        "channels": {"bench": [f"mailto://127.0.0.1:{smtp_port}"
                               "?from=bench@example.org&to=alerts@example.org"]},
        "sources": sources,
    }


def run_ours(workdir: Path, pass_no: int, limit: float) -> Measure:
    database = workdir / "monitor.db"
    report = workdir / f"ours-{pass_no}.json"
    log = workdir / f"ours-{pass_no}.log"
    before = table_rows(database)
    argv = [sys.executable, str(BENCH / "run_check.py"), str(report),
            "--watchlist", str(workdir / "watchlist.yaml"),
            "--database", f"sqlite:///{database}", "check"]
    wall, usage, code = run_child(argv, log=log, limit=limit)
    if code not in (0, 1) or not report.exists():
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"commitment-monitor check exited {code}; see {log}:\n{tail}")
    inside = json.loads(report.read_text())
    after = table_rows(database)
    return Measure(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024,
                   storage=used_bytes(database),
                   changes=after.get("change", 0) - before.get("change", 0),
                   failed=after.get("failed", 0) - before.get("failed", 0),
                   startup_cpu=inside["startup_cpu"], check_cpu=inside["check_cpu"],
                   deliver_cpu=inside["deliver_cpu"],
                   normalised=inside["normalised"], detected=inside["detected"],
                   outcomes={k: (int(v[0]), float(v[1])) for k, v in inside["outcomes"].items()},
                   stages=inside["stages"],
                   rows={table: after[table] - before.get(table, 0) for table in after})


def used_bytes(database: Path) -> int:
    """Bytes the database really holds: its pages minus free ones, after a checkpoint has moved
    the write-ahead log into the file (a log left behind is pending writes, not growth)."""
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("pragma wal_checkpoint(truncate)")
        pages, free, size = (connection.execute(f"pragma {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def table_rows(database: Path) -> dict[str, int]:
    if not database.exists():
        return {}
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        tables = [row[0] for row in connection.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")]
        rows = {table: connection.execute(f'select count(*) from "{table}"').fetchone()[0]
                for table in tables}
        rows["failed"] = connection.execute(
            "select count(*) from \"check\" where outcome = 'failed'").fetchone()[0]
        return rows


# --- running children -----------------------------------------------------------------------

def run_child(argv: list[str], *, log: Path, limit: float,
              env: dict[str, str] | None = None) -> tuple[float, resource.struct_rusage, int]:
    """Run one child to the end; its own rusage comes from wait4(), killed after ``limit`` s."""
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        watchdog = threading.Timer(limit, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode == -9:
        raise RuntimeError(f"{argv[0]} was killed after {limit:.0f} s; see {log}")
    return wall, usage, process.returncode


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


class SmtpSink:
    """aiosmtpd's Sink handler in its own process: alerts are really sent, and thrown away."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    import socket

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the process meant to listen on port {port} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {deadline:.0f} s")


# --- one size -------------------------------------------------------------------------------

def bench_size(n: int, setup: Setup,
               results: dict[tuple[int, str, int], list[Measure]]) -> list[Page]:
    """All repeats at one size; returns the pages edited in the last repeat."""
    pages = policysite.plan(n, pdf_fraction=setup.pdf_fraction, seed=setup.seed)
    site = Site(OUT / "site", pages, setup.seed)
    started = time.perf_counter()
    site.generate()
    print(f"N={n}: {n} pages ready ({sum(p.size for p in pages) / 1e6:.0f} MB, "
          f"{sum(p.kind == 'pdf' for p in pages)} PDFs) in {time.perf_counter() - started:.1f} s",
          flush=True)
    site.reset()
    site.start()
    smtp = SmtpSink()
    limit = 120 + n * 0.5  # a pass that takes longer than this is broken, not slow
    try:
        for repeat in range(setup.repeat):
            workdir = fresh_dir(OUT / "run" / f"n{n}-r{repeat}")
            site.reset()
            (workdir / "watchlist.yaml").write_text(
                yaml.safe_dump(watchlist(site, smtp.port), sort_keys=False))
            (workdir / "urls.yaml").write_text(urlwatch_jobs(site))
            (workdir / "urlwatch.yaml").write_text(yaml.safe_dump(URLWATCH_CONFIG))
            tools = [tool for tool in TOOLS if tool == "ours" or setup.urlwatch]
            if repeat % 2:
                tools.reverse()  # alternate who goes first, so neither always meets a cold cache
            for pass_no in PASSES:
                if pass_no == 3:
                    site.edit(setup.changed, random.Random(f"{setup.seed}:{n}:{repeat}"))
                for tool in tools:
                    runner: Callable[[Path, int, float], Measure] = (
                        run_ours if tool == "ours" else run_urlwatch)
                    measure = runner(workdir, pass_no, limit)
                    results[(n, tool, pass_no)].append(measure)
                    print(f"N={n} repeat {repeat + 1}/{setup.repeat} pass {pass_no} {tool:8} "
                          f"wall {measure.wall:6.2f} s  CPU {measure.cpu:6.2f} s  "
                          f"RSS {measure.rss_mb:5.0f} MB  changes {measure.changes}  "
                          f"failed {measure.failed}", flush=True)
        return site.edited
    finally:
        smtp.stop()
        site.stop()


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- normalise + detect, in this process ------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    size: int
    text_size: int
    normalise_ms: float
    detect_ms: float


def time_one_megabyte_page(seed: int, runs: int = 7) -> Timing:
    """Median normalise + detect of a ~1 MB HTML page against its edited previous version."""
    page = Page(index=900_000, kind="html", size=1_000_000)
    old_model = policysite.build(page, seed)
    new_model = policysite.edit(old_model, random.Random(seed))
    normalise_ms, detect_ms, old, new = measure_pair(page, old_model, new_model, seed, runs)
    return Timing(size=len(policysite.render(new_model, seed)), text_size=len(new),
                  normalise_ms=normalise_ms, detect_ms=detect_ms)


def time_edited_pages(pages: list[Page], seed: int) -> float:
    """Mean normalise + detect (ms) of the pages edited in pass 3: the floor for their cost.
    All of them, as the checks' mean is over all of them (a sample would miss or over-weigh the
    few 1 MB pages)."""
    costs = []
    for page in pages:
        old_model = policysite.build(page, seed)
        new_model = policysite.edit(old_model, random.Random(f"{seed}:edit:{page.index}"))
        normalise_ms, detect_ms, _, _ = measure_pair(page, old_model, new_model, seed, runs=1)
        costs.append(normalise_ms + detect_ms)
    return statistics.mean(costs) if costs else 0.0


def measure_pair(page: Page, old_model: policysite.Model, new_model: policysite.Model, seed: int,
                 runs: int) -> tuple[float, float, str, str]:
    from monitor.detect import detect
    from monitor.fetch import FetchResult
    from monitor.normalise import normalise
    from monitor.watchlist import Commitment, Source

    media_type = "application/pdf" if page.kind == "pdf" else "text/html"
    selection = ({"select": policysite.SELECT, "drop": policysite.DROP}
                 if page.kind == "html" else {})
    commitment = Commitment(id="first-will", title="First commitment",
                            quote=policysite.commitment_quote(old_model))
    source = Source(id="bench", company=page.company, title=page.title,
                    url="http://127.0.0.1/bench", discover=True, commitments=(commitment,),
                    **selection)

    def result(model: policysite.Model) -> FetchResult:
        return FetchResult(url=source.url, status=200, body=policysite.render(model, seed),
                           media_type=media_type, fetched_at=datetime.now(UTC), elapsed_ms=0)

    old_result, new_result = result(old_model), result(new_model)
    old = normalise(old_result, source).text
    normalise_ms, detect_ms = [], []
    for _ in range(runs):
        started = time.process_time()
        new = normalise(new_result, source).text
        normalised = time.process_time()
        detect(old, new, source.commitments, discover=True)
        normalise_ms.append((normalised - started) * 1000)
        detect_ms.append((time.process_time() - normalised) * 1000)
    return statistics.median(normalise_ms), statistics.median(detect_ms), old, new


# --- the report -------------------------------------------------------------------------------

def median(measures: list[Measure], value: Callable[[Measure], float | None]) -> float:
    values = [v for v in map(value, measures) if v is not None]
    return statistics.median(values) if values else float("nan")


def per_check_ms(measures: list[Measure], outcome: str) -> float:
    """Median over runs of the mean CPU (ms) of one check with this outcome."""
    return median(measures, lambda m: m.outcomes[outcome][1] / m.outcomes[outcome][0] * 1000
                  if outcome in m.outcomes else None)


def stage_ms(measures: list[Measure], outcome: str) -> dict[str, float]:
    """Median over runs of the mean CPU (ms) of one check with this outcome, by stage."""
    return {stage: median(measures, lambda m, s=stage: m.stages[outcome].get(s, 0.0)
                          / m.outcomes[outcome][0] * 1000 if outcome in m.stages else None)
            for stage in STAGES}


def breakdown(measures: list[Measure], outcome: str) -> str:
    return ", ".join(f"{stage} {ms:.1f}" for stage, ms in stage_ms(measures, outcome).items())


def render_report(setup: Setup, results: dict[tuple[int, str, int], list[Measure]],
                  timing: Timing, changed_cost: dict[int, float]) -> str:
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}",
             f"Command: `{setup.command}`",
             f"Pages: 20 KB-1 MB, {setup.pdf_fraction:.0%} PDFs, all on 127.0.0.1; pass 3 edits "
             f"{setup.changed:.0%}; medians of {setup.repeat} "
             f"run(s); load average at the end {os.getloadavg()[0]:.2f}.", "",
             "| N | pass | ours wall s | ours CPU ms/source | of which check_all "
             "| ours peak RSS MB | ours DB MB | parsed | urlwatch wall s | urlwatch CPU ms/source "
             "| urlwatch peak RSS MB | urlwatch cache MB | CPU ratio urlwatch/ours |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in setup.sizes:
        for pass_no, label in PASSES.items():
            ours = results[(n, "ours", pass_no)]
            theirs = results.get((n, "urlwatch", pass_no), [])
            cpu = median(ours, lambda m: m.cpu)
            steady = median(ours, lambda m: m.check_cpu)
            their_cpu = median(theirs, lambda m: m.cpu)
            lines.append(
                f"| {n:,} | {pass_no} {label} | {median(ours, lambda m: m.wall):.2f} "
                f"| {cpu / n * 1000:.2f} | {steady / n * 1000:.2f} "
                f"| {median(ours, lambda m: m.rss_mb):.0f} "
                f"| {median(ours, lambda m: m.storage) / 1e6:.1f} "
                f"| {median(ours, lambda m: m.normalised):.0f} "
                f"| {median(theirs, lambda m: m.wall):.2f} | {their_cpu / n * 1000:.2f} "
                f"| {median(theirs, lambda m: m.rss_mb):.0f} "
                f"| {median(theirs, lambda m: m.storage) / 1e6:.1f} | {their_cpu / cpu:.1f}x |")
    lines += ["", *findings(setup, results, timing, changed_cost)]
    return "\n".join(lines)


def findings(setup: Setup, results: dict[tuple[int, str, int], list[Measure]], timing: Timing,
             changed_cost: dict[int, float]) -> list[str]:
    """The targets of issue 8, each with the figure that meets or misses it."""
    lines = [f"- normalise + detect of a {timing.size / 1e6:.2f} MB page "
             f"({timing.text_size / 1e3:.0f} KB of text, discover on): "
             f"{timing.normalise_ms:.0f} + {timing.detect_ms:.0f} = "
             f"{timing.normalise_ms + timing.detect_ms:.0f} ms "
             f"({verdict(timing.normalise_ms + timing.detect_ms < 150)}; target < 150 ms)"]
    for n in setup.sizes:
        unchanged = results[(n, "ours", 2)]
        first, edited = results[(n, "ours", 1)], results[(n, "ours", 3)]
        steady = median(unchanged, lambda m: m.check_cpu) / n * 1000
        total = median(unchanged, lambda m: m.cpu) / n * 1000
        start = median(unchanged, lambda m: m.startup_cpu)
        parsed = max((m.normalised or 0) + (m.detected or 0) for m in unchanged)
        lines.append(f"- N={n:,} unchanged pass: {steady:.2f} ms CPU per source in check_all "
                     f"({per_check_ms(unchanged, 'not_modified'):.2f} ms in each 304 check's "
                     f"own thread), {total:.2f} ms with the process's start-up ({start:.2f} s "
                     f"to import) and watchlist loading ({verdict(steady < 2)}; target < 2 ms); "
                     f"pages normalised or compared: {parsed} ({verdict(parsed == 0)}; target 0)")
        rows = {table: int(median(unchanged, lambda m, t=table: m.rows.get(t, 0)))
                for table in sorted(unchanged[0].rows)}
        grown = {table: count for table, count in rows.items() if count}
        growth = median(unchanged, lambda m: m.storage) - median(first, lambda m: m.storage)
        lines.append(f"- N={n:,} storage growth in the unchanged pass: {growth / 1e3:+.0f} KB, "
                     f"new rows {grown or 'none'} ({verdict(set(grown) <= {'check'})}; "
                     "target: one check row per source, nothing else)")
        edits = max(1, round(n * setup.changed))
        per_changed = per_check_ms(edited, "changed")
        floor = changed_cost[n]
        inside = stage_ms(edited, "changed")
        lines.append(f"- N={n:,} changed pass: {per_changed:.0f} ms CPU per changed check "
                     f"(fetch, hash, normalise, detect, store) vs {floor:.0f} ms to normalise + "
                     f"detect those pages alone ({verdict(per_changed <= floor * 1.1)}; target: "
                     f"no more than that); inside the check, normalise + detect took "
                     f"{inside['normalise'] + inside['detect']:.0f} ms; normalised "
                     f"{median(edited, lambda m: m.normalised):.0f} of {edits} edited, first "
                     f"check {per_check_ms(first, 'baseline'):.0f} ms per page")
        lines.append(f"- N={n:,} CPU per check by stage, ms in its own thread: first check "
                     f"({breakdown(first, 'baseline')}); 304 "
                     f"({breakdown(unchanged, 'not_modified')}); changed "
                     f"({breakdown(edited, 'changed')})")
        walls = [median(results[(n, "ours", p)], lambda m: m.wall) for p in PASSES]
        if n >= 1000:
            each = " / ".join(f"{wall:.1f} s ({verdict(wall < 15 * n / 1000)})" for wall in walls)
            lines.append(f"- N={n:,} wall time of passes 1/2/3: {each} "
                         "(target < 15 s per 1,000 sources)")
        rss = max(median(results[(n, "ours", p)], lambda m: m.rss_mb) for p in PASSES)
        lines.append(f"- N={n:,} peak RSS {rss:.0f} MB (target < 250 MB at 5,000 sources"
                     f"{': ' + verdict(rss < 250) if n >= 5000 else ''})")
        if setup.urlwatch:
            ratios = [median(results[(n, "urlwatch", p)], lambda m: m.cpu)
                      / median(results[(n, "ours", p)], lambda m: m.cpu) for p in PASSES]
            lines.append(f"- N={n:,} urlwatch used {' / '.join(f'{r:.1f}x' for r in ratios)} our "
                         f"CPU in passes 1/2/3 ({verdict(min(ratios) >= 3)}; target >= 3x)")
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    return (f"{os.cpu_count()} cores ({model}), {memory} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def write_readme(setup: Setup, report: str) -> None:
    write_results(f"cycle sizes={','.join(map(str, setup.sizes))}", report)


def write_results(name: str, report: str) -> None:
    """Replace the block ``name`` in bench/README.md's results section (or append it)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = README.read_text(encoding="utf-8")
    block = f"{start}\n{report}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.replace("<!-- /results -->", f"{block}\n\n<!-- /results -->")
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
