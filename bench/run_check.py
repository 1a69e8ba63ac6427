"""Run ``commitment-monitor check`` in this process and report where its CPU went.

    python bench/run_check.py REPORT.json --watchlist W --database URL check

The benchmark starts this as a child and reads the child's total CPU and peak RSS from wait4(); the
report adds what only the inside can see: the CPU spent on start-up (interpreter and imports), in
``pipeline.check_all`` (the per-source work a long-running daemon repeats) and in delivery, and how
many pages were normalised and compared. That last count is the proof that an unchanged (304 or
same-hash) source is not parsed at all. Each check's own thread CPU is also split by stage (lease,
fetch, normalise, detect, store, alert targets, other), per outcome, so a changed check's cost can
be read as its normalise + detect and the rest. "alert targets" is resolving the channels' URLs,
which loads apprise's plugins (0.2-0.5 s) in the first check of a process that alerts.
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


def time_by_outcome(pipeline: ModuleType, outcomes: dict[str, list[float]],
                    stages: dict[str, Counter[str]]) -> None:
    """Charge each check_source call's own thread CPU to its outcome (not_modified, changed...),
    in total and by stage: per-source costs measured directly, not as differences of noisy
    totals."""
    original = pipeline.check_source
    lock = threading.Lock()

    def timed(*args: Any, **kwargs: Any) -> Any:
        _current.stages, _current.inner = Counter[str](), 0.0
        by_stage = _current.stages
        started = time.thread_time()
        try:
            summary = original(*args, **kwargs)
        finally:
            _current.stages = None
        spent = time.thread_time() - started
        by_stage["other"] = spent - sum(by_stage.values())
        with lock:
            count_and_cpu = outcomes.setdefault(summary.outcome, [0, 0.0])
            count_and_cpu[0] += 1
            count_and_cpu[1] += spent
            stages.setdefault(summary.outcome, Counter()).update(by_stage)
        return summary

    pipeline.check_source = timed


_current = threading.local()
"""The stage counter of the check this thread is running (None outside a check)."""


def charge_stage(module: ModuleType, name: str, stage: str) -> None:
    """Charge the thread CPU of every call of ``module.name`` during a check to ``stage``."""
    original = getattr(module, name)

    def charged(*args: Any, **kwargs: Any) -> Any:
        by_stage = getattr(_current, "stages", None)
        if by_stage is None:
            return original(*args, **kwargs)
        outer, _current.inner = _current.inner, 0.0
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:  # a stage called inside another is charged to itself only
            spent = time.thread_time() - started
            by_stage[stage] += spent - _current.inner
            _current.inner = outer + spent

    setattr(module, name, charged)


def run(report: Path, cli_args: list[str]) -> int:
    from monitor import cli, detect, fetch, normalise, notify, pipeline, store

    imported = cpu_seconds()
    counts: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    count_calls([normalise, pipeline], "normalise", counts)
    count_calls([detect, pipeline], "detect", counts)
    count_calls([pipeline, cli], "check_all", counts, cpu)
    count_calls([notify, cli], "deliver_pending", counts, cpu)
    outcomes: dict[str, list[float]] = {}
    stages: dict[str, Counter[str]] = {}
    time_by_outcome(pipeline, outcomes, stages)
    for module, name, stage in [
            (store, "acquire_lease", "lease"), (fetch, "fetch", "fetch"),
            (normalise, "normalise", "normalise"), (pipeline, "detect", "detect"),
            # _record_quiet covers _record_routine, its fast path
            (pipeline, "_record_version", "store"), (pipeline, "_record_quiet", "store"),
            (pipeline, "_record_failure", "store"), (notify, "targets", "alert targets")]:
        charge_stage(module, name, stage)
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
        "stages": stages,
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
