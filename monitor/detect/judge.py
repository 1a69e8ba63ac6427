"""Judge how one commitment sentence changed: weakened, strengthened or reworded, and why.

Each signal (negation, modality, conditions, numbers, word swaps, list elements, qualifiers)
reads the two versions and the words that changed between them, and reports a direction with a
one-line reason. Any weakening makes the verdict "weakened" (a reader must see it even when
something else got stronger); a number whose direction cannot be known makes it "reworded" with
that said. The word lists are in wording.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher
from typing import Literal

from monitor.detect.sentences import canonical
from monitor.detect.wording import (
    CADENCES,
    CONDITIONS,
    DATE,
    DEADLINE,
    DISCLAIMER,
    DURATION,
    EFFECTIVE,
    EMAIL,
    FUNCTION_WORDS,
    HEDGED_NEGATION,
    HEDGES,
    LIST_WORDS,
    MONTHS,
    NEGATION,
    NUMBER_WORDS,
    OPPOSITE,
    QUALIFIERS,
    REFERENCE,
    REPLACEMENTS,
    STRONG_MODALS,
    UNIT_DAYS,
    WEAK_MODALS,
)

WEAKER, UNCLEAR, STRONGER = -1, 0, 1
DIGIT = re.compile(r"\d")
DURATION_WORDS = ("hour", "day", "dail", "week", "month", "quarter", "year", "annual")
"""Every DURATION match holds one of these (a unit, or a cadence: daily ... biannually)."""
Verdict = tuple[Literal["weakened", "strengthened", "reworded"], str]
Diff = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Signal:
    direction: int
    reason: str


def judge(before: str, after: str) -> Verdict | None:
    """The verdict on a changed sentence, or None when the change is cosmetic only."""
    if _masked(before) == _masked(after):
        return None
    ops = _changed_chunks(before, after)
    signals = [signal for check in CHECKS for signal in check(before, after, ops)]
    weaker = [s.reason for s in signals if s.direction == WEAKER]
    stronger = [s.reason for s in signals if s.direction == STRONGER]
    unclear = [s.reason for s in signals if s.direction == UNCLEAR]
    if weaker:
        extra = f" (but also {stronger[0]})" if stronger else ""
        return "weakened", "; ".join(_unique(weaker)[:2]) + extra
    if stronger:
        return "strengthened", "; ".join(_unique(stronger)[:2])
    if unclear:
        return "reworded", unclear[0]
    return "reworded", _wording_reason(ops)


def _masked(text: str) -> str:
    """Canonical text without what changes between fetches or renumberings, not in meaning:
    cross-reference numbers ("Section 3.2"), e-mail addresses, and the date in a sentence that
    dates the document ("These terms take effect on 5 January 2022")."""
    text = text.casefold()
    if "@" in text or "[email" in text:      # EMAIL matches nothing else
        text = EMAIL.sub("email", text)
    if DIGIT.search(text):                   # DATE and REFERENCE match nothing without one
        if EFFECTIVE.search(text):
            text = DATE.sub("date", text)
        text = REFERENCE.sub(lambda m: m.group(0).split()[0], text)
    return canonical(text)


Opcodes = list[tuple[str, int, int, int, int]]


@functools.lru_cache(maxsize=256)   # judge() and word_diff() diff the same pair; read only
def _opcodes(before: str, after: str) -> tuple[list[str], list[str], Opcodes]:
    """Words of both versions and difflib's edit script over their canonical forms."""
    old, new = before.split(), after.split()
    matcher = SequenceMatcher(None, [canonical(w) for w in old], [canonical(w) for w in new],
                              autojunk=False)
    return old, new, matcher.get_opcodes()


def word_diff(before: str, after: str) -> Diff:
    """Word-level ops ("=", text) / ("-", text) / ("+", text) in the original wording."""
    old, new, opcodes = _opcodes(before, after)
    diff: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            diff.append(("=", " ".join(old[i1:i2])))
            continue
        if i2 > i1:
            diff.append(("-", " ".join(old[i1:i2])))
        if j2 > j1:
            diff.append(("+", " ".join(new[j1:j2])))
    return tuple(diff)


@dataclass(frozen=True)
class Chunk:
    """One changed stretch: the old and new words, and the words just before it."""

    removed: str
    added: str
    context: str        # the sentence up to the change, old side for a removal, else new side


def _changed_chunks(before: str, after: str) -> list[Chunk]:
    """The edits that change words ("interests.It" -> "interests. It" changes none)."""
    old, new, opcodes = _opcodes(before, after)
    chunks = [Chunk(" ".join(old[i1:i2]), " ".join(new[j1:j2]),
                    " ".join(old[:i1] if i2 > i1 else new[:j1]))
              for tag, i1, i2, j1, j2 in opcodes if tag != "equal"]
    return [c for c in chunks if canonical(c.removed) != canonical(c.added)]


def _count(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(canonical(text)))


def _first(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(canonical(text))
    return match.group(0) if match else ""


def _clip(text: str, limit: int = 80) -> str:
    text = text.strip(" ,;")
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- signals ---------------------------------------------------------------------------------


def negation(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """"will not" -> "will", "never" removed: the protection is gone."""
    old = _count(NEGATION, before) - _count(HEDGED_NEGATION, before)
    new = _count(NEGATION, after) - _count(HEDGED_NEGATION, after)
    if old == new:
        return []
    chunk = next((c for c in ops if _count(NEGATION, c.removed if old > new else c.added)), None)
    shown = f': "{_clip(chunk.removed)}" -> "{_clip(chunk.added)}"' if chunk else ""
    if old > new:
        return [Signal(WEAKER, f"negation dropped{shown}")]
    return [Signal(STRONGER, f"negation added{shown}")]


def modality(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """will/shall/must/would -> may/should/aim to/...; a hedge verb inserted; or the reverse."""
    strong = _count(STRONG_MODALS, after) - _count(STRONG_MODALS, before)
    weak = _count(WEAK_MODALS, after) - _count(WEAK_MODALS, before)
    if strong < 0 and weak > 0:
        gone, came = _swap(ops, STRONG_MODALS, WEAK_MODALS)
        return [Signal(WEAKER, f'modal downgrade: "{gone}" -> "{came}"')]
    if weak > 0:
        return [Signal(WEAKER, f'hedge added: "{_swap(ops, WEAK_MODALS, WEAK_MODALS)[1]}"')]
    if strong > 0 and weak < 0:
        gone, came = _swap(ops, WEAK_MODALS, STRONG_MODALS)
        return [Signal(STRONGER, f'modal upgrade: "{gone}" -> "{came}"')]
    if weak < 0:
        return [Signal(STRONGER, f'hedge removed: "{_swap(ops, WEAK_MODALS, WEAK_MODALS)[0]}"')]
    return []


def _swap(ops: Sequence[Chunk], gone: re.Pattern[str], came: re.Pattern[str]) -> tuple[str, str]:
    """The words that went and came, preferring one edit that holds both ("would" -> "may")."""
    for chunk in ops:
        if (old := _first(gone, chunk.removed)) and (new := _first(came, chunk.added)):
            return old, new
    return (_first(gone, " ".join(c.removed for c in ops)),
            _first(came, " ".join(c.added for c in ops)))


def conditions(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """A new exception or condition ("unless", "if ... a competitor", "where feasible"). In a
    disclaimer ("Google won't be responsible for ...") an exception cuts the other way."""
    weaker, stronger = (STRONGER, WEAKER) if _count(DISCLAIMER, before) else (WEAKER, STRONGER)
    signals: list[Signal] = []
    for pattern, label in ((CONDITIONS, "exception or condition"), (HEDGES, "hedge")):
        delta = _count(pattern, after) - _count(pattern, before)
        if delta > 0:
            chunk = next((c.added for c in ops if _count(pattern, c.added)), "")
            shown = _clip(chunk) if chunk else _first(pattern, after)
            signals.append(Signal(weaker, f'new {label}: "{shown}"'))
        elif delta < 0:
            chunk = next((c.removed for c in ops if _count(pattern, c.removed)), "")
            shown = _clip(chunk) if chunk else _first(pattern, before)
            signals.append(Signal(stronger, f'{label} removed: "{shown}"'))
    return signals


def replacements(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """Word swaps with a known direction: updated -> reviewed, all -> some, commitments -> goals."""
    old, new = f" {canonical(before)} ", f" {canonical(after)} "
    signals: list[Signal] = []
    for strong, weak, label in REPLACEMENTS:
        if old.count(f" {strong} ") == new.count(f" {strong} "):
            continue                         # not lost on either side: no swap either way
        if _swapped(old, new, strong, weak):
            signals.append(Signal(WEAKER, f'{label}: "{strong}" -> "{weak}"'))
        elif _swapped(new, old, strong, weak):
            opposite = OPPOSITE.get(label, label)
            signals.append(Signal(STRONGER, f'{opposite}: "{weak}" -> "{strong}"'))
    return signals


def _swapped(old: str, new: str, strong: str, weak: str) -> bool:
    """`strong` lost and `weak` gained; when `weak` is part of `strong` ("match or exceed" ->
    "exceed"), `weak` surviving is enough."""
    s, w = f" {strong} ", f" {weak} "
    if new.count(s) >= old.count(s):
        return False
    if w in s:
        return new.count(w) > 0 and new.count(w) >= old.count(w)
    return new.count(w) > old.count(w)


def qualifiers(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """"at a minimum", "only", "all", "unredacted" dropped (or added) without a replacement."""
    signals: list[Signal] = []
    for chunk in ops:
        if chunk.removed and not chunk.added and (word := _first(QUALIFIERS, chunk.removed)):
            signals.append(Signal(WEAKER, f'qualifier dropped: "{word}"'))
        elif chunk.added and not chunk.removed and (word := _first(QUALIFIERS, chunk.added)):
            signals.append(Signal(STRONGER, f'qualifier added: "{word}"'))
    return signals


def listed_items(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """An item leaving an enumeration ("... censorship, domestic surveillance, and ...") narrows
    it; inside an exception ("except A, B") it is the exception that narrows."""
    signals: list[Signal] = []
    for chunk in ops:
        if chunk.removed and chunk.added or not _is_list_element(chunk):
            continue
        in_exception = bool(CONDITIONS.search(canonical(chunk.context)))
        if chunk.removed:
            direction = STRONGER if in_exception else WEAKER
            signals.append(Signal(direction, f'listed item removed: "{_clip(chunk.removed)}"'))
        else:
            direction = WEAKER if in_exception else STRONGER
            signals.append(Signal(direction, f'listed item added: "{_clip(chunk.added)}"'))
    return signals


def _is_list_element(chunk: Chunk) -> bool:
    """"A, [B,] C", "A, B[, and C]" or "facilitate [or depict] abuse": an element of an
    enumeration, short enough to be one."""
    text = (chunk.removed or chunk.added).strip()
    words = canonical(text).split()
    if not words or len(words) > 8:
        return False
    if not any(len(w) > 2 and w not in FUNCTION_WORDS for w in words):
        return False                         # "or", "of the": a rephrasing, not an element
    if chunk.context.rstrip().endswith(","):
        return text.endswith(",") or words[0] in LIST_WORDS
    return words[0] in LIST_WORDS and len(words) <= 3


def numbers(before: str, after: str, ops: Sequence[Chunk]) -> list[Signal]:
    """Durations and cadences: longer is weaker (30 -> 90 days, every 6 -> 12 months). Any other
    number changed (a threshold, a count) has no safe direction, so it is only reported."""
    old, new = _durations(before), _durations(after)
    if len(old) == len(new):
        longer = [(o, n) for o, n in zip(old, new, strict=True) if _longer(n[0], o[0])]
        shorter = [(o, n) for o, n in zip(old, new, strict=True) if _longer(o[0], n[0])]
        if longer and not shorter:
            return [Signal(WEAKER, f'number relaxed: "{longer[0][0][1]}" -> "{longer[0][1][1]}"')]
        if shorter and not longer:
            return [Signal(STRONGER,
                           f'number tightened: "{shorter[0][0][1]}" -> "{shorter[0][1][1]}"')]
    if deadline := _deadline_moved(before, after):
        return [deadline]
    old_texts, new_texts = {t for _, t in old}, {t for _, t in new}
    old_plain, new_plain = _plain_numbers(before), _plain_numbers(after)
    gone = [t for _, t in old if t not in new_texts] + [n for n in old_plain if n not in new_plain]
    came = [t for _, t in new if t not in old_texts] + [n for n in new_plain if n not in old_plain]
    if gone or came:
        return [Signal(UNCLEAR, f'number changed: "{", ".join(gone) or "-"}" -> '
                                f'"{", ".join(came) or "-"}" (direction unclear)')]
    return []


def _longer(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[1] > b[1] or (a[1] == b[1] and a[0] > b[0])


def _durations(text: str) -> list[tuple[tuple[float, float], str]]:
    """((low days, high days), as written) for each duration or cadence in the text."""
    text = text.casefold()
    if not any(word in text for word in DURATION_WORDS):
        return []                            # no unit or cadence: DURATION cannot match
    found = []
    if DIGIT.search(text):
        text = REFERENCE.sub(" ", text)
    for match in DURATION.finditer(text):
        if match.group("cadence"):
            days = CADENCES[match.group("cadence")]
            found.append(((days, days), match.group(0)))
            continue
        unit = UNIT_DAYS[match.group("unit")]
        low = _number(match.group("low")) * unit
        high = _number(match.group("high")) * unit if match.group("high") else low
        found.append(((low, high), " ".join(match.group(0).split())))
    return found


def _number(word: str) -> float:
    return float(word) if word[0].isdigit() else float(NUMBER_WORDS[word])


def _plain_numbers(text: str) -> list[str]:
    """Numbers outside durations, dates and cross-references, as written ("50%", "1,000")."""
    text = text.casefold()
    if not DIGIT.search(text):
        return []
    text = DATE.sub(" ", DURATION.sub(" ", REFERENCE.sub(" ", text)))
    return re.findall(r"\d(?:[\d,.]*\d)?%?", text)


def _deadline_moved(before: str, after: str) -> Signal | None:
    """"by January 1, 2026" -> "by January 1, 2027": a later deadline is weaker."""
    old, new = _deadlines(before), _deadlines(after)
    if len(old) != 1 or len(new) != 1 or old == new:
        return None
    (old_date, old_text), (new_date, new_text) = old[0], new[0]
    direction = WEAKER if new_date > old_date else STRONGER
    verb = "deadline moved later" if direction == WEAKER else "deadline moved earlier"
    return Signal(direction, f'{verb}: "{old_text}" -> "{new_text}"')


def _deadlines(text: str) -> list[tuple[date, str]]:
    lowered = text.casefold()
    if not DIGIT.search(lowered):
        return []                            # every DATE has digits
    found = []
    for match in DATE.finditer(lowered):
        if not DEADLINE.search(lowered[:match.start()]):
            continue
        try:
            when = _date(match)
        except ValueError:                   # "February 30": not a date we can compare
            continue
        found.append((when, match.group(0)))
    return found


def _date(match: re.Match[str]) -> date:
    if match.group("iso"):
        return date.fromisoformat(match.group("iso"))
    year, month, day = (match.group("year"), match.group("month"), match.group("day")) \
        if match.group("month") else \
        (match.group("year_second"), match.group("month_second"), match.group("day_first"))
    return date(int(year), MONTHS.index(month) + 1, int(day))


def _wording_reason(ops: Sequence[Chunk]) -> str:
    chunk = ops[0] if ops else Chunk("", "", "")
    if chunk.removed and chunk.added:
        return f'wording changed: "{_clip(chunk.removed, 50)}" -> "{_clip(chunk.added, 50)}"'
    if chunk.removed:
        return f'words removed: "{_clip(chunk.removed, 60)}"'
    return f'words added: "{_clip(chunk.added, 60)}"'


CHECKS: tuple[Callable[[str, str, Sequence[Chunk]], list[Signal]], ...] = (
    negation, modality, conditions, numbers, replacements, listed_items, qualifiers,
)
"""In order of how much each matters to a reader: the first weakening found leads the reason."""
