"""SIGKILL the real `commitment-monitor run` at random points, restart it on the same SQLite file,
and hold it to docs/guarantees.md: every commitment a page gained is recorded once and emailed
once to each channel; the only duplicates are sends a kill interrupted after the mail server had
accepted the message (made observable by a server slow to answer "250").

The loop is bounded (8 kills or 40 s, then one clean run); bench/reliability.py runs it longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults_support import CHANNELS, crash_run

pytestmark = pytest.mark.slow


def test_sigkill_at_random_points_loses_nothing_and_duplicates_only_inside_the_window(
        tmp_path: Path) -> None:
    report = crash_run(tmp_path, seed=20261128, iterations=8, budget=40)

    assert report.problems() == [], report
    assert report.final_exit == 0
    assert len(report.kills) >= 3, "too few kills to mean anything"
    assert report.expected >= 5 and report.changes == report.expected
    assert report.deliveries % len(CHANNELS) == 0 and report.deliveries > 0
    assert report.emails == report.deliveries + report.duplicated
    assert report.duplicated <= sum(len(kill.mid_send) for kill in report.kills)
