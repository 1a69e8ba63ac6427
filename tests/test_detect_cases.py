"""Golden detection cases: tests/cases/<name>/{v1.txt, v2.txt, expected.yaml}.

v1.txt absent means a baseline (old=None). expected.yaml lists the findings, all of them:
status, the commitment id or a substring of the sentence, and a substring of the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.detect import Finding, detect

CASES = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class Commitment:
    id: str
    title: str
    quote: str


def load(name: str) -> tuple[str | None, str, dict[str, Any]]:
    folder = CASES / name
    old = folder / "v1.txt"
    spec = yaml.safe_load((folder / "expected.yaml").read_text())
    return (old.read_text() if old.exists() else None, (folder / "v2.txt").read_text(), spec)


def matches(finding: Finding, expected: dict[str, Any]) -> bool:
    if finding.status != expected["status"]:
        return False
    if expected.get("reason", "") not in finding.reason:
        return False
    if "commitment" in expected:
        return finding.commitment_id == expected["commitment"]
    return expected["sentence"] in (finding.after or finding.before or "")


def describe(findings: tuple[Finding, ...]) -> str:
    return "\n".join(f"  {f.status} {f.key} {f.reason!r}: {f.before!r} -> {f.after!r}"
                     for f in findings) or "  (no findings)"


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(name: str) -> None:
    old, new, spec = load(name)
    commitments = [Commitment(**c) for c in spec.get("commitments") or []]
    detection = detect(old, new, commitments, discover=spec.get("discover", False),
                       removed_before=spec.get("removed_before") or ())

    if "collapsed" in spec:
        assert detection.collapsed is not None and spec["collapsed"] in detection.collapsed
    else:
        assert detection.collapsed is None, detection.collapsed
    unmatched = list(detection.findings)
    for expected in spec["expected"]:
        found = next((f for f in unmatched if matches(f, expected)), None)
        assert found is not None, f"missing {expected}; got:\n{describe(detection.findings)}"
        unmatched.remove(found)
    assert not unmatched, f"unexpected findings:\n{describe(tuple(unmatched))}"
