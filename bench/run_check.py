"""Run ``commitment-monitor check`` in this process and report where its CPU went.

    python bench/run_check.py REPORT.json --watchlist W --database URL check

The benchmark starts this as a child and reads the child's total CPU and peak RSS from wait4(); the
report adds what only the inside can see: the CPU spent on start-up (interpreter and imports), in
``pipeline.check_all`` (the per-source work a long-running daemon repeats) and in delivery, and how
many pages were normalised and compared. That last count is the proof that an unchanged (304 or
same-hash) source is not parsed at all.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count_calls(modules: list[ModuleType], name: str, counts: Counter[str],
                cpu: Counter[str] | None = None) -> None:
    """Wrap function ``name`` wherever these modules hold it (``from x import f`` copies it)."""
    original = getattr(modules[0], name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        started = cpu_seconds() if cpu is not None else 0.0
        try:
            return original(*args, **kwargs)
        finally:
            if cpu is not None:
                cpu[name] += cpu_seconds() - started

    for module in modules:
        if getattr(module, name, None) is original:
            setattr(module, name, counted)


def time_by_outcome(pipeline: ModuleType, outcomes: dict[str, list[float]]) -> None:
    """Charge each check_source call's own thread CPU to its outcome (not_modified, changed...):
    per-source costs measured directly, not as differences of noisy totals."""
    original = pipeline.check_source
    lock = threading.Lock()

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        summary = original(*args, **kwargs)
        spent = time.thread_time() - started
        with lock:
            count_and_cpu = outcomes.setdefault(summary.outcome, [0, 0.0])
            count_and_cpu[0] += 1
            count_and_cpu[1] += spent
        return summary

    pipeline.check_source = timed


def run(report: Path, cli_args: list[str]) -> int:
    from monitor import cli, detect, normalise, notify, pipeline

    imported = cpu_seconds()
    counts: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    count_calls([normalise, pipeline], "normalise", counts)
    count_calls([detect, pipeline], "detect", counts)
    count_calls([pipeline, cli], "check_all", counts, cpu)
    count_calls([notify, cli], "deliver_pending", counts, cpu)
    outcomes: dict[str, list[float]] = {}
    time_by_outcome(pipeline, outcomes)
    code = invoke(lambda: cli.main(cli_args, standalone_mode=False))
    report.write_text(json.dumps({
        "exit_code": code,
        "startup_cpu": imported,
        "total_cpu": cpu_seconds(),
        "check_cpu": cpu["check_all"],
        "deliver_cpu": cpu["deliver_pending"],
        "normalised": counts["normalise"],
        "detected": counts["detect"],
        "outcomes": outcomes,
    }))
    return code


def invoke(main: Callable[[], Any]) -> int:
    """click returns the exit code (standalone_mode=False) or raises SystemExit; take either."""
    try:
        result = main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: run_check.py REPORT.json [commitment-monitor arguments ...]")
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
