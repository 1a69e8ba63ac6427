"""Golden detection cases: tests/cases/<name>/{v1.txt, v2.txt, expected.yaml}.

v1.txt absent means a baseline (old=None). expected.yaml lists the findings, all of them:
status, the commitment id or a substring of the sentence, and a substring of the reason.
"""

from __future__ import annotations

import re
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


def cosmetic_rewrite(text: str) -> str:
    """The same document as another renderer might print it: curly quotes, long dashes, doubled
    spaces, each paragraph line split after its first sentence, headings renumbered."""
    lines = []
    for line in text.splitlines():
        marker, body = re.match(r"(\s*- |#+ |)(.*)", line).groups()
        body = body.replace('"', "\u201c").replace("'", "\u2019").replace(" - ", " \u2014 ")
        body = body.replace(", ", ",  ")
        if marker.startswith("#"):
            lines.append(f"{marker}9. {body}")
        elif not marker and not body.startswith("|") and ". " in body:
            first, rest = body.split(". ", 1)
            lines.extend([first + ".", rest])
        else:
            lines.append(marker + body)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_a_cosmetic_rewrite_of_each_case_text_gives_no_findings(name: str) -> None:
    _, new, spec = load(name)
    if "collapsed" in spec:
        pytest.skip("an error page has nothing to compare")
    commitments = [Commitment(**c) for c in spec.get("commitments") or []]
    detection = detect(new, cosmetic_rewrite(new), commitments, discover=True)
    assert detection.collapsed is None
    assert not detection.findings, describe(detection.findings)
