"""Replay the real policy corpus through normalise -> detect and score the engine.

    .venv/bin/python bench/corpus_eval.py [--verbose] [--only SERVICE/DOCUMENT]

For every document in ../shared/corpus/<service>/<document>/, the raw snapshots (*.html, *.pdf)
are normalised in stamp order exactly as a fetch would be (a FetchResult built from the file, a
Source with the document's select/drop from bench/corpus_labels.yaml), and each text is compared
with the last good one by detect(discover=True). A snapshot that fails to normalise, or that
detect calls collapsed, is a health event: the next one is compared with the last good text.
Two documents have no raw snapshots (Google's and Facebook's terms, 31 versions over six years):
their Open Terms Archive versions/*.md are converted to the normalised format and replayed the
same way, which tests the engine alone on locale variants, image tokens and long histories.

Scored against bench/corpus_labels.yaml, written by reading the corpus:
  alerts            transitions with at least one finding
  noise alerts      alerts on transitions labelled noise (target: 0)
  caught            expected findings found with the right status (target: all)
Then a timing: a ~300 KB, ~3000-sentence document against itself with a few edits.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.detect import Detection, Finding, detect  # noqa: E402
from monitor.detect.sentences import canonical, split  # noqa: E402
from monitor.errors import NormaliseError  # noqa: E402
from monitor.fetch import FetchResult  # noqa: E402
from monitor.normalise import normalise  # noqa: E402
from monitor.watchlist import Source  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
LABELS = Path(__file__).with_name("corpus_labels.yaml")
MEDIA_TYPES = {".html": "text/html", ".pdf": "application/pdf"}


@dataclass
class Score:
    transitions: int = 0
    alerts: int = 0
    health: int = 0
    noise: int = 0
    noise_alerts: int = 0
    variants: int = 0
    expected: int = 0
    caught: int = 0
    unlabelled: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("transitions", "alerts", "health", "noise", "noise_alerts", "variants",
                     "expected", "caught", "unlabelled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.misses.extend(other.misses)

    def row(self, name: str) -> str:
        return (f"{name:44} {self.transitions:5} {self.alerts:6} {self.health:6} "
                f"{self.noise_alerts:3}/{self.noise:<3} {self.caught:3}/{self.expected:<3} "
                f"{self.variants:4}"
                + (f"  ({self.unlabelled} unlabelled)" if self.unlabelled else ""))


HEADER = (f"{'document':44} {'trans':>5} {'alerts':>6} {'health':>6} {'noise':>7} {'caught':>7}"
          f" {'variant':>7}\n" + "-" * 90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="print every finding")
    parser.add_argument("--only", help="one SERVICE/DOCUMENT")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}: nothing to evaluate (skipped)")
        return 0
    labels = yaml.safe_load(LABELS.read_text())["documents"]
    total = Score()
    print(HEADER)
    for folder in sorted(p for p in CORPUS.glob("*/*") if p.is_dir()):
        name = f"{folder.parent.name}/{folder.name}"
        if args.only and name != args.only:
            continue
        snapshots = sorted(p for p in folder.iterdir() if p.suffix in MEDIA_TYPES) \
            or sorted((folder / "versions").glob("*.md"))
        score = evaluate(name, snapshots, labels.get(name, {}), verbose=args.verbose)
        print(score.row(name))
        total.add(score)
    print("-" * 90)
    print(total.row("TOTAL"))
    for miss in total.misses:
        print("  " + miss)
    print()
    print(timing())
    return 0


def evaluate(name: str, snapshots: list[Path], label: dict[str, Any], *, verbose: bool) -> Score:
    score = Score()
    transitions = label.get("transitions") or {}
    previous: str | None = None
    removed: set[str] = set()       # as the pipeline passes them: what was reported removed
    for path in snapshots:
        stamp = path.stem
        try:
            text = normalised(path, label)
        except NormaliseError as exc:
            score.health += 1
            if verbose:
                print(f"    {stamp}: health event: {exc}")
            continue
        if previous is None:
            if detect(None, text, []).collapsed:     # a first snapshot can be an error page too
                score.health += 1
            else:
                previous = text
            continue
        detection = detect(previous, text, [], discover=True, removed_before=removed)
        removed.update(f.before for f in detection.findings if f.status == "removed" and f.before)
        score.transitions += 1
        if detection.collapsed:
            score.health += 1
        else:
            previous = text
        if detection.findings:
            score.alerts += 1
        judge_transition(name, stamp, detection, transitions.get(stamp), score)
        if verbose:
            report(stamp, detection)
    return score


def judge_transition(name: str, stamp: str, detection: Detection, label: dict[str, Any] | None,
                     score: Score) -> None:
    if label is None:
        score.unlabelled += 1
        return
    if label["kind"] == "variant":
        score.variants += 1
        return
    if label["kind"] == "noise":
        score.noise += 1
        if detection.findings:
            score.noise_alerts += 1
            score.misses.append(f"{name} {stamp}: alert on noise ({label.get('note', '')}): "
                                f"{len(detection.findings)} findings")
        return
    for expected in label.get("expect") or []:
        score.expected += 1
        if any(matches(f, expected) for f in detection.findings):
            score.caught += 1
        else:
            score.misses.append(f"{name} {stamp}: missed {expected['status']} "
                                f"{expected['sentence'][:60]!r}")


def matches(finding: Finding, expected: dict[str, Any]) -> bool:
    text = f"{finding.before or ''} {finding.after or ''}"
    return finding.status == expected["status"] and expected["sentence"] in text


def normalised(path: Path, label: dict[str, Any]) -> str:
    """The text the pipeline would store; a list of selectors is tried in order, as the layout
    of a page changed over the years (Open Terms Archive's declarations change likewise)."""
    if path.suffix == ".md":
        return from_markdown(path.read_text())
    result = FetchResult(url=label.get("url", "https://example.org/"), status=200,
                         body=path.read_bytes(), media_type=MEDIA_TYPES[path.suffix],
                         fetched_at=datetime.strptime(path.stem, "%Y-%m-%dT%H%M%S%z")
                         .astimezone(UTC), elapsed_ms=0)
    selectors = label.get("select") or [None]
    error: NormaliseError | None = None
    for select in selectors:
        source = Source(id="corpus", company="corpus", title="corpus", url=result.url,
                        select=select, drop=tuple(label.get("drop") or ()))
        try:
            return normalise(result, source).text
        except NormaliseError as exc:
            if exc.kind != "selector_empty":
                raise
            error = exc
    assert error is not None
    raise error


MD_SETEXT = {"=": "#", "-": "##"}
MD_LINK = re.compile(r"!\[[^\]]*\]\([^)]*\)|\[([^\]]*)\]\([^)]*\)")
MD_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)")
MD_ITEM = re.compile(r"^( *)(?:[*+-]|\d+\.)\s+(.*)")


def from_markdown(markdown: str) -> str:
    """OTA's Markdown in the normaliser's format: headings "#", items "- " (two spaces a level),
    table rows kept, links and emphasis reduced to their text, images and rules dropped."""
    lines: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        underline = line.strip()
        if lines and underline and set(underline) <= {"=", "-"} and len(underline) >= 3 \
                and not lines[-1].startswith(("#", "-", "|")):
            lines[-1] = f"{MD_SETEXT[underline[0]]} {lines[-1]}"
            continue
        line = MD_EMPHASIS.sub("", MD_LINK.sub(lambda m: m.group(1) or "", line))
        line = re.sub(r"\\(.)", r"\1", line)
        if item := MD_ITEM.match(line):
            depth = len(item.group(1)) // 4
            text = " ".join(item.group(2).split())
            if text:
                lines.append(f"{'  ' * depth}- {text}")
        elif " ".join(line.split()) and set(line.strip()) - {"-", " ", "*", "_"}:
            stripped = line.strip()
            lines.append(stripped if stripped.startswith(("#", "|")) else " ".join(line.split()))
    return "\n".join(lines)


def report(stamp: str, detection: Detection) -> None:
    if detection.collapsed:
        print(f"    {stamp}: collapsed: {detection.collapsed}")
    for f in detection.findings:
        print(f"    {stamp}: {f.status:12} {f.reason[:90]}")
        print(f"        - {(f.before or '')[:150]}")
        print(f"        + {(f.after or '')[:150]}")


def timing() -> str:
    """detect() on a ~300 KB document (corpus versions joined): against itself with five edits,
    the usual case, and against 300 other KB, a complete rewrite, the worst case."""
    texts = "\n".join(p.read_text() for p in sorted(CORPUS.glob("*/*/versions/*.md")))
    old = texts[:texts.rfind("\n", 0, 300_000)]
    edited = (old.replace("will not", "may", 1).replace("30 days", "90 days", 1)
              .replace("We will", "Where feasible, we will", 1)
              .replace("must", "should", 1) + "\nWe will never sell your data.\n")
    rewrite = texts[texts.find("\n", len(texts) - 300_000) + 1:]
    lines = []
    for name, new in (("five edits", edited), ("a rewrite", rewrite)):
        runs = []
        for _ in range(5):
            canonical.cache_clear()             # cold: no sentence seen before
            start = time.perf_counter()
            detection = detect(old, new, [], discover=True)
            runs.append(time.perf_counter() - start)
        lines.append(f"timing: detect() on {len(old) // 1000} KB, {len(split(old))} units, vs "
                     f"{name} ({len(detection.findings)} findings): median "
                     f"{sorted(runs)[2] * 1000:.0f} ms over {len(runs)} runs")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
