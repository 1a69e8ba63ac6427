"""Find commitments in a document and pair each old unit with its counterpart in the new one.

Alignment is exact first (canonical text, so quotes, dashes, spacing and numbering never matter;
order never matters either, so reordered sections align), then sentences re-cut across lines,
then fuzzy with rapidfuzz over what is left, one-to-one by best score. Only the leftovers are
compared fuzzily, and each only with the units sharing its word pairs, so a 3000-sentence document
with a few edits costs a dictionary pass and a handful of rapidfuzz calls, and a full rewrite
stays near a second.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from monitor.detect.sentences import Unit, canonical, split_sentences
from monitor.detect.wording import COMMITMENT_LANGUAGE

RATIO_CUTOFF = 62.0         # fuzz.ratio for two versions of one sentence
SHORT_UNIT_CUTOFF = 80.0    # a list item of a few words pairs only with a near twin
CONTAINMENT_CUTOFF = 90.0   # token_set_ratio when one version adds or drops a clause ...
CONTAINED_SHARE = 0.45      # ... and the shorter version keeps this share of the words
COMMON_SHINGLE = 50         # a word pair in more units than this is boilerplate, not evidence
CANDIDATES = 10             # units sharing the most word pairs, then scored with rapidfuzz
QUOTE_CUTOFF = 82.0         # a configured quote found with small edits


def is_commitment(unit: Unit) -> bool:
    """A sentence with commitment language, or a list item or table row whose lead-in or
    heading has it ("If a threshold is crossed, we will act as in Table 1:")."""
    if COMMITMENT_LANGUAGE.search(unit.canon):
        return True
    if unit.kind != "sentence":
        return any(COMMITMENT_LANGUAGE.search(canonical(context))
                   for context in (unit.lead, *unit.section[-1:]) if context)
    return False


def same_section(old: Unit, new: Unit) -> bool:
    return [canonical(h) for h in old.section] == [canonical(h) for h in new.section]


@dataclass
class Alignment:
    """Old unit index -> new unit index for every unit that survives, exact or edited. Units
    re-cut by a reflow (one sentence now on two lines, or two lines now one) are `reflowed`:
    paired for locating quotes, but nothing changed in them."""

    pairs: dict[int, int] = field(default_factory=dict)
    reflowed_old: set[int] = field(default_factory=set)
    reflowed_new: set[int] = field(default_factory=set)


def align(old: Sequence[Unit], new: Sequence[Unit]) -> Alignment:
    pairs, left_old, left_new = _align_exact(old, new)
    alignment = Alignment(pairs)
    # Each step passes on the indices still unpaired, in order: only they are looked at again.
    left_old, left_new = _align_reflow(old, new, alignment, left_old, left_new)
    paired_rows = _align_rows(old, new, alignment, left_old, left_new)
    left_old = [i for i in left_old if i not in alignment.pairs]
    left_new = [j for j in left_new if j not in paired_rows]
    alignment.pairs.update(_align_fuzzy(old, new, left_old, left_new))
    return alignment


def _align_reflow(old: Sequence[Unit], new: Sequence[Unit], alignment: Alignment,
                  left_old: list[int], left_new: list[int]) -> tuple[list[int], list[int]]:
    for i, run in _recut(old, new, left_old, set(left_new)):        # one old -> several new
        alignment.pairs[i] = run[0]
        alignment.reflowed_old.add(i)
        alignment.reflowed_new.update(run)
    left_old = [i for i in left_old if i not in alignment.pairs]
    left_new = [j for j in left_new if j not in alignment.reflowed_new]
    for j, run in _recut(new, old, left_new, set(left_old)):        # several old -> one new
        for i in run:
            alignment.pairs[i] = j
        alignment.reflowed_old.update(run)
        alignment.reflowed_new.add(j)
    return ([i for i in left_old if i not in alignment.pairs],
            [j for j in left_new if j not in alignment.reflowed_new])


def _recut(whole: Sequence[Unit], pieces: Sequence[Unit], left_whole: list[int],
           free: set[int]) -> list[tuple[int, list[int]]]:
    """Units of `whole` whose text is exactly a run of consecutive free units of `pieces`."""
    by_text: dict[str, list[int]] = defaultdict(list)
    for j in free:
        by_text[pieces[j].canon].append(j)
    found: list[tuple[int, list[int]]] = []
    for w in left_whole:
        if run := _run_spelling(whole[w].canon, pieces, by_text, free):
            found.append((w, run))
            free.difference_update(run)
    return found


def _run_spelling(text: str, pieces: Sequence[Unit], by_text: dict[str, list[int]],
                  free: set[int]) -> list[int] | None:
    """Free consecutive pieces that joined spell `text`: the first is a word-boundary prefix."""
    for cut in (m.start() for m in re.finditer(" ", text)):
        for start in by_text.get(text[:cut], ()):
            if start not in free:
                continue
            run, joined = [start], pieces[start].canon
            while len(joined) < len(text) and run[-1] + 1 in free:
                run.append(run[-1] + 1)
                joined = f"{joined} {pieces[run[-1]].canon}"
            if joined == text:
                return run
    return None


def _align_rows(old: Sequence[Unit], new: Sequence[Unit], alignment: Alignment,
                left_old: list[int], left_new: list[int]) -> set[int]:
    """Table rows keep their label: "Critical | Stop" and "Critical | Develop" are one row.
    Returns the new indices paired."""
    old_rows = _rows_by_label(old, set(left_old))
    new_rows = _rows_by_label(new, set(left_new))
    paired: set[int] = set()
    for label, i in old_rows.items():
        if (j := new_rows.get(label)) is not None:
            alignment.pairs[i] = j
            paired.add(j)
    return paired


def _rows_by_label(units: Sequence[Unit], free: set[int]) -> dict[tuple[str, str], int]:
    """(section, first cell) -> index, for labels that occur once among the free rows."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for k in free:
        if units[k].kind == "row" and " | " in units[k].text:
            label = canonical(units[k].text.split(" | ", 1)[0])
            seen[(canonical(" ".join(units[k].section)), label)].append(k)
    return {label: ks[0] for label, ks in seen.items() if len(ks) == 1 and label[1]}


def _align_exact(old: Sequence[Unit],
                 new: Sequence[Unit]) -> tuple[dict[int, int], list[int], list[int]]:
    """Identical canonical text pairs up; among duplicates, the one in the same section wins.
    Returns the pairs and the old and new indices left, in order."""
    by_text: dict[str, list[int]] = defaultdict(list)
    for j, unit in enumerate(new):
        by_text[unit.canon].append(j)
    pairs: dict[int, int] = {}
    left_old: list[int] = []
    for i, unit in enumerate(old):
        candidates = by_text.get(unit.canon)
        if not candidates:
            left_old.append(i)
            continue
        if len(candidates) == 1:             # the common case: a unique sentence
            pairs[i] = candidates.pop()
            continue
        j = next((j for j in candidates if new[j].section == unit.section), candidates[0])
        candidates.remove(j)
        pairs[i] = j
    return pairs, left_old, sorted(j for left in by_text.values() for j in left)


def _align_fuzzy(old: Sequence[Unit], new: Sequence[Unit], left_old: list[int],
                 left_new: list[int]) -> dict[int, int]:
    if not left_old or not left_new:
        return {}
    blocks = _Blocks([new[j].canon for j in left_new])
    scored: list[tuple[float, int, int]] = []
    for i in left_old:
        for k, score in _candidates(old[i].canon, blocks):
            j = left_new[k]
            bonus = 2.0 if old[i].section == new[j].section else 0.0
            scored.append((score + bonus, i, j))
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(scored, key=lambda s: (-s[0], s[1], s[2])):
        if i not in pairs and j not in used:
            pairs[i] = j
            used.add(j)
    return pairs


class _Blocks:
    """Units indexed by their word pairs, so a unit is scored only against the few that share
    its wording: a rewritten 3000-sentence document would otherwise be 9M fuzzy comparisons."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.index: dict[str, list[int]] = defaultdict(list)
        self.single_words: list[int] = []
        for k, text in enumerate(texts):
            shingles = _shingles(text)
            if not shingles:
                self.single_words.append(k)
            for shingle in shingles:
                self.index[shingle].append(k)

    def near(self, text: str) -> list[int]:
        """The units sharing the most word pairs with `text` (boilerplate pairs ignored)."""
        shingles = _shingles(text)
        if not shingles:
            return self.single_words
        index = self.index
        shared = Counter(itertools.chain.from_iterable(    # one count, in the same order
            postings for shingle in shingles
            if len(postings := index.get(shingle, ())) <= COMMON_SHINGLE))
        return [k for k, _ in shared.most_common(CANDIDATES)]


def _shingles(text: str) -> set[str]:
    words = text.split()
    return {f"{a} {b}" for a, b in itertools.pairwise(words)}


def _candidates(text: str, blocks: _Blocks) -> list[tuple[int, float]]:
    """(index, score) of plausible counterparts; short units need a near twin, and a unit that
    gained or lost a clause counts by containment."""
    words = text.count(" ") + 1
    cutoff = SHORT_UNIT_CUTOFF if words < 5 else RATIO_CUTOFF
    found: list[tuple[int, float]] = []
    for k in blocks.near(text):
        choice = blocks.texts[k]
        score = fuzz.ratio(text, choice, score_cutoff=cutoff)
        shorter, longer = sorted((words, choice.count(" ") + 1))
        if shorter >= 6 and shorter >= CONTAINED_SHARE * longer:   # a clause, not a phrase
            contained = fuzz.token_set_ratio(text, choice, score_cutoff=CONTAINMENT_CUTOFF)
            score = max(score, contained * 0.9)
        if score:
            found.append((k, score))
    return found


@dataclass(frozen=True)
class Span:
    """Units [start, stop) of one document that hold a configured quote."""

    start: int
    stop: int

    def indices(self) -> range:
        return range(self.start, self.stop)


class Located:
    """A document's units with their canonical texts joined, for quote search across sentences."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        self._join([unit.canon for unit in units])

    @classmethod
    def of_canons(cls, canons: list[str]) -> Located:
        """A document known by its units' canonical texts alone (no units): enough to find
        quotes, which is all a first version is asked."""
        located = cls.__new__(cls)
        located.units = ()
        located._join(canons)
        return located

    def _join(self, canons: list[str]) -> None:
        self.canons = canons
        self.starts = list(itertools.accumulate([len(c) + 1 for c in canons[:-1]], initial=0)) \
            if canons else []
        self.joined = " ".join(canons)

    def unit_at(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def find(self, quote: str) -> Span | None:
        """Exact (canonical, "..." as a gap) first, then the best fuzzy window of sentences."""
        return self.find_exact(quote) or self.find_fuzzy(quote)

    def find_exact(self, quote: str) -> Span | None:
        parts = quote_parts(quote)
        if not parts:
            return None
        pattern = r"\b" + r"\b.{0,2000}?\b".join(re.escape(p) for p in parts) + r"\b"
        match = re.search(pattern, self.joined)
        if match is None:
            return None
        return Span(self.unit_at(match.start()), self.unit_at(match.end() - 1) + 1)

    def find_fuzzy(self, quote: str) -> Span | None:
        best = self.closest(quote)
        return best[1] if best and best[0] >= QUOTE_CUTOFF else None

    def closest(self, quote: str) -> tuple[float, Span] | None:
        """The window of consecutive units most like the quote, with its score (0-100)."""
        parts = quote_parts(quote)
        canons = self.canons
        if not parts or not canons:
            return None
        size = len(split_sentences(re.sub(r"\.\.\.|…", " ", quote)))
        best: tuple[float, Span] | None = None
        for width in (size, size + 1):
            windows = [" ".join(canons[i:i + width])
                       for i in range(max(1, len(canons) - width + 1))]
            scored = _score_windows(parts, windows)
            if scored and (best is None or scored[0] > best[0]):
                start = scored[1]
                best = (scored[0], Span(start, min(start + width, len(canons))))
        return best


def _score_windows(parts: list[str], windows: list[str]) -> tuple[float, int] | None:
    """Best (score, window index): plain ratio for a whole quote; for an abridged one, every
    part must appear (partial_ratio) and the weakest part sets the score."""
    if len(parts) == 1:
        found = process.extractOne(parts[0], windows, scorer=_quote_score)
        return (found[1], found[2]) if found else None
    shortlist = process.extract(" ".join(parts), windows, scorer=fuzz.token_set_ratio, limit=5)
    best: tuple[float, int] | None = None
    for _, _, k in shortlist:
        score = min(fuzz.partial_ratio(p, windows[k]) for p in parts)
        if best is None or score > best[0]:
            best = (score, k)
    return best


def _quote_score(quote: str, window: str, **_: object) -> float:
    """A quote may be only a part of its sentence: then the best-matching part counts."""
    if len(window) > len(quote):
        return fuzz.partial_ratio(quote, window)
    return fuzz.ratio(quote, window)


def quote_parts(quote: str) -> list[str]:
    """A configured quote in canonical form, cut at its "..." abridgements."""
    return [c for c in (canonical(p) for p in re.split(r"\.\.\.|…|\[\.\.\.\]", quote)) if c]
