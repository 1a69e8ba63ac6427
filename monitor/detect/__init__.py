"""Compare two normalised versions of a document and judge what happened to each commitment.

Pure: no I/O, no database, no clock. The steps, one module each:
    collapse          a new text that is an error page or a stub is a health event, not removals
    sentences.split   units (sentences, list items, table rows) with their section path
    locate.align      old unit -> new unit: exact, re-cut lines, table-row labels, then fuzzy;
                      configured quotes found in both versions
    judge.judge       weakened / strengthened / reworded, with a one-line reason
    wording           the vocabulary all of them use (commitment language, modals, hedges, ...)
    relocated         a removed sentence found in another of the company's documents is "moved"
    arrived           an added sentence that another of them lost shortly before is "moved" too
Only commitments produce findings: configured quotes, and with ``discover`` every unit with
commitment language (a list item or table row counts through its lead-in). Everything else may
change freely.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from rapidfuzz import fuzz, process

from monitor.detect.collapse import collapse_reason
from monitor.detect.judge import judge, word_diff
from monitor.detect.locate import (
    QUOTE_CUTOFF,
    Located,
    Span,
    align,
    is_commitment,
    same_section,
)
from monitor.detect.sentences import (
    Memo,
    Unit,
    canonical,
    sentence_key,
    split,
    tracked_texts,
)
from monitor.detect.wording import EXCEPTION_CLAUSE

__all__ = ["SEVERITY", "CommitmentLike", "Detection", "Finding", "Status", "arrived", "detect",
           "relocated", "sentence_key"]

Status = Literal["removed", "weakened", "not_found", "reworded", "moved", "added",
                 "strengthened", "restored"]
SEVERITY: tuple[Status, ...] = ("removed", "weakened", "not_found", "reworded", "moved",
                                "added", "strengthened", "restored")
"""Most severe first; an alert's subject starts with the most severe status it carries."""

RESTORED_CUTOFF = 92.0    # how close an added sentence must be to one removed earlier
HINT_CUTOFF = 50.0        # a not_found quote names the closest text when it is at least this close
RELOCATED_CUTOFF = 92.0   # how close a removed sentence must be to one in another document


class CommitmentLike(Protocol):
    id: str
    title: str
    quote: str


@dataclass(frozen=True)
class Finding:
    status: Status
    key: str                      # the commitment id, or "s:" + hash of the sentence
    commitment_id: str | None     # None for a discovered sentence
    commitment_title: str | None
    before: str | None            # the whole sentence in the old version (None when added)
    after: str | None             # the whole sentence in the new version (None when removed)
    diff: tuple[tuple[str, str], ...]  # word-level: ("=", text) / ("-", text) / ("+", text)
    section_before: str | None    # heading trail, e.g. "Safeguards › Pausing"
    section_after: str | None
    reason: str                   # one line, e.g. 'modal downgrade: "will" -> "may"'


@dataclass(frozen=True)
class Detection:
    findings: tuple[Finding, ...]
    collapsed: str | None = None  # why the new text looks broken (a health event); then no findings


def detect(old: str | None, new: str, commitments: Sequence[CommitmentLike], *,
           discover: bool = False, removed_before: Collection[str] = ()) -> Detection:
    """old=None means a baseline: only configured quotes missing from ``new`` are reported
    (status "not_found"). ``removed_before`` holds what was reported removed earlier, as
    sentences, sentence keys ("s:...") or commitment ids, so a return is "restored", not
    "added"."""
    if reason := collapse_reason(old, new):
        return Detection(findings=(), collapsed=reason)
    if old is None:
        if not commitments:  # a baseline judges only configured quotes: nothing to split for
            return Detection(())
        texts, canons = tracked_texts(new)
        return Detection(tuple(_not_found(Located.of_canons(canons), texts, commitments)))
    memo = Memo()                            # the paragraphs both versions share split once
    if old == new:
        old_units = new_units = _tracked(new, memo)
    elif old.count("\n") < new.count("\n"):  # a reflowed text is cut into more lines: the
        old_units = _tracked(old, memo)       # other one's sentences are found in them
        new_units = _tracked(new, memo)
    else:
        new_units = _tracked(new, memo)
        old_units = _tracked(old, memo)
    comparison = _Comparison(old_units, new_units, removed_before)
    findings = [f for c in commitments if (f := comparison.configured(c))]
    if discover:
        findings.extend(comparison.discovered())
    return Detection(tuple(findings))


def relocated(findings: Sequence[Finding], documents: Mapping[str, str]) -> list[Finding]:
    """The findings, with each removed sentence that another of the publisher's documents holds
    (``documents``: name -> current text) re-read as "moved" there. Commitments move between
    documents (a framework split in two, duties moved to a compliance document, a policy
    renamed): that is news, but not a deletion. Only texts already published count: a sentence
    that reappears elsewhere later is that document's "added"."""
    if not documents or not any(f.status == "removed" and f.before for f in findings):
        return list(findings)
    sentences = {name: tracked_texts(text)[1] for name, text in documents.items()}
    return [_moved(finding, where) if finding.status == "removed" and finding.before
            and (where := _holder(canonical(finding.before), sentences)) else finding
            for finding in findings]


def arrived(findings: Sequence[Finding], removed: Mapping[str, str]) -> list[Finding]:
    """The findings, with each added sentence that another of the publisher's documents lost
    shortly before (``removed``: sentence -> that document, e.g. "Acme · Policy, removed
    2026-03-01") re-read as having moved here. The other half of ``relocated``: the document
    that loses a commitment is often checked before the one that gains it. A sentence whose
    meaning changed on the way is "weakened" or "strengthened" all the same."""
    if not removed or not any(f.status == "added" and f.after for f in findings):
        return list(findings)
    origins = {canonical(sentence): (sentence, where) for sentence, where in removed.items()}
    return [_arrival(finding, finding.after, origins) if finding.status == "added"
            and finding.after else finding for finding in findings]


def _arrival(finding: Finding, after: str, origins: Mapping[str, tuple[str, str]]) -> Finding:
    match = origins.get(canonical(after))
    if match is None:
        closest = process.extractOne(canonical(after), list(origins), scorer=fuzz.ratio,
                                     score_cutoff=RELOCATED_CUTOFF)
        if closest is None:
            return finding
        match = origins[closest[0]]
    sentence, where = match
    verdict = judge(sentence, after)
    if verdict is None or verdict[0] == "reworded":
        return replace(finding, status="moved",
                       reason=f"moved here from another document: {where}")
    return replace(finding, status=verdict[0],
                   reason=f"moved here from another document ({where}), and {verdict[0]}: "
                          f"{verdict[1]}")


def _holder(sentence: str, documents: Mapping[str, list[str]]) -> str | None:
    """The document holding ``sentence`` (canonical), exactly or nearly."""
    for name, canons in documents.items():
        if sentence in canons or process.extractOne(
                sentence, canons, scorer=fuzz.ratio, score_cutoff=RELOCATED_CUTOFF):
            return name
    return None


def _moved(finding: Finding, where: str) -> Finding:
    return replace(finding, status="moved",
                   reason=f"moved to another document: {where} (no longer in this one)")


def _tracked(text: str, memo: Memo) -> list[Unit]:
    """Units worth comparing: a line that only stamps a date is the page's age, not content."""
    return split(text, memo, stamps=False)


def _headings(units: Sequence[Unit]) -> set[str]:
    """The canonical headings of a document (each distinct section path read once)."""
    return {canonical(h) for section in {u.section for u in units} for h in section}


def _not_found(document: Located, texts: list[str],
               commitments: Sequence[CommitmentLike]) -> Iterator[Finding]:
    """Configured quotes absent from a first version, with the nearest text as a hint for
    fixing the watchlist."""
    for commitment in commitments:
        if document.find_exact(commitment.quote):
            continue
        closest = document.closest(commitment.quote)
        if closest and closest[0] >= QUOTE_CUTOFF:
            continue
        hint = ""
        if closest and closest[0] >= HINT_CUTOFF:
            text = " ".join(texts[i] for i in closest[1].indices())
            hint = f'; closest: "{text[:80]}" ({closest[0]:.0f}% similar)'
        yield Finding("not_found", commitment.id, commitment.id, commitment.title, None, None, (),
                      None, None, f"configured quote not found in the document{hint}")


class _Comparison:
    """One old/new pair of documents, aligned once, asked about each commitment in turn."""

    def __init__(self, old: list[Unit], new: list[Unit], removed_before: Collection[str]) -> None:
        self.old, self.new = Located(old), Located(new)
        self.alignment = align(old, new)
        self.pairs = self.alignment.pairs
        self.paired_new = set(self.pairs.values()) | self.alignment.reflowed_new
        self.claimed_old: set[int] = set()
        self.claimed_new: set[int] = set()
        self.removed_keys = {r if r.startswith("s:") else sentence_key(r) for r in removed_before}
        self.removed_keys.update(removed_before)          # commitment ids as they are
        self.removed_texts = {canonical(r): r for r in removed_before if not r.startswith("s:")}

    @functools.cached_property
    def old_headings(self) -> set[str]:
        """Read only to tell a move from a restructure, which is rare."""
        return _headings(self.old.units)

    @functools.cached_property
    def new_headings(self) -> set[str]:
        return _headings(self.new.units)

    # --- configured quotes -------------------------------------------------------------------

    def configured(self, commitment: CommitmentLike) -> Finding | None:
        old_span = self.old.find(commitment.quote)
        new_span = self.new.find_exact(commitment.quote) or self._follow(old_span) \
            or self.new.find_fuzzy(commitment.quote)
        for span, claimed in ((old_span, self.claimed_old), (new_span, self.claimed_new)):
            if span:
                claimed.update(span.indices())
        if old_span is None and new_span is None:
            return None
        before = [self.old.units[i] for i in old_span.indices()] if old_span else []
        after = [self.new.units[j] for j in new_span.indices()] if new_span else []
        if not after:
            return self._finding("removed", commitment.id, before, after,
                                 "configured quote no longer in the document", commitment)
        if not before:
            returned = {commitment.id, sentence_key(" ".join(u.text for u in after))}
            status: Status = "restored" if returned & self.removed_keys else "added"
            return self._finding(status, commitment.id, before, after,
                                 "configured quote now in the document", commitment)
        return self._changed(commitment.id, before, after, commitment)

    def _follow(self, span: Span | None) -> Span | None:
        """Where the alignment put the quote's old sentences in the new document."""
        if span is None:
            return None
        moved = sorted(self.pairs[i] for i in span.indices() if i in self.pairs)
        if not moved:
            return None
        if moved[-1] - moved[0] > 2 * len(span.indices()):
            return Span(moved[0], moved[0] + 1)
        return Span(moved[0], moved[-1] + 1)

    # --- discovered sentences ----------------------------------------------------------------

    def discovered(self) -> Iterator[Finding]:
        old_units, new_units = self.old.units, self.new.units
        same = {i for i, j in self.pairs.items()     # decided before any regex or call
                if (a := old_units[i]) is (b := new_units[j])
                or a.canon == b.canon and a.section == b.section}
        for i, unit in enumerate(old_units):
            if i not in same and i not in self.claimed_old \
                    and (finding := self._discovered_old(i, unit)):
                yield finding
        for j, unit in enumerate(self.new.units):
            if j not in self.paired_new and j not in self.claimed_new and is_commitment(unit):
                yield self._added(unit)

    def _discovered_old(self, i: int, unit: Unit) -> Finding | None:
        if i in self.alignment.reflowed_old:
            return None
        j = self.pairs.get(i)
        if j is None:
            if not is_commitment(unit):
                return None
            return self._finding("removed", sentence_key(unit.text), [unit], [],
                                 _removed_reason(unit))
        counterpart = self.new.units[j]
        if unit.canon == counterpart.canon and unit.section == counterpart.section:
            return None                      # the common case, decided before any regex runs
        if j in self.claimed_new or not (is_commitment(unit) or is_commitment(counterpart)):
            return None
        return self._changed(None, [unit], [counterpart])

    def _added(self, unit: Unit) -> Finding:
        key = sentence_key(unit.text)
        if key in self.removed_keys:
            return self._finding("restored", key, [], [unit], "sentence removed earlier is back")
        if self.removed_texts:
            match = process.extractOne(unit.canon, list(self.removed_texts), scorer=fuzz.ratio,
                                       score_cutoff=RESTORED_CUTOFF)
            if match:
                earlier = self.removed_texts[match[0]]
                return self._finding("restored", sentence_key(earlier), [], [unit],
                                     f"sentence removed earlier is back ({match[1]:.0f}% same "
                                     "wording)")
        if EXCEPTION_CLAUSE.search(unit.canon):
            return self._finding("weakened", key, [], [unit],
                                 f'new exception clause: "{unit.text[:80]}"')
        return self._finding("added", key, [], [unit], "new commitment sentence")

    # --- shared ------------------------------------------------------------------------------

    def _changed(self, key: str | None, before: list[Unit], after: list[Unit],
                 commitment: CommitmentLike | None = None) -> Finding | None:
        """key None: the old sentence's key, made only for a finding (most pairs are cosmetic)."""
        old_text = " ".join(u.text for u in before)
        new_text = " ".join(u.text for u in after)
        verdict = judge(old_text, new_text)
        if verdict is not None:
            key = sentence_key(old_text) if key is None else key
            return self._finding(verdict[0], key, before, after, verdict[1], commitment)
        if reason := self._moved(before[0], after[0]):
            key = sentence_key(old_text) if key is None else key
            return self._finding("moved", key, before, after, reason, commitment)
        return None

    def _moved(self, old: Unit, new: Unit) -> str | None:
        """A move between two sections that exist in both versions; a renamed heading or a new
        sub-section moves nothing."""
        if same_section(old, new):
            return None
        old_last = canonical(old.section[-1]) if old.section else ""
        new_last = canonical(new.section[-1]) if new.section else ""
        if old_last == new_last or old_last not in self.new_headings \
                or new_last not in self.old_headings:
            return None                      # renamed or newly created sections: a restructure
        if fuzz.ratio(old_last, new_last) >= 85:
            return None
        return f'moved from "{old.path or "(top)"}" to "{new.path or "(top)"}"'

    def _finding(self, status: Status, key: str, before: list[Unit], after: list[Unit],
                 reason: str, commitment: CommitmentLike | None = None) -> Finding:
        old_text = " ".join(u.text for u in before) or None
        new_text = " ".join(u.text for u in after) or None
        if old_text and new_text:
            diff = word_diff(old_text, new_text)
        else:
            diff = (("-", old_text),) if old_text else (("+", new_text or ""),)
        return Finding(
            status=status, key=key,
            commitment_id=commitment.id if commitment else None,
            commitment_title=commitment.title if commitment else None,
            before=old_text, after=new_text, diff=diff,
            section_before=before[0].path if before else None,
            section_after=after[0].path if after else None,
            reason=reason,
        )


def _removed_reason(unit: Unit) -> str:
    if unit.kind == "item" and unit.lead:
        return f'list item removed from "{unit.lead[:60]}"'
    return "commitment sentence no longer in the document"
