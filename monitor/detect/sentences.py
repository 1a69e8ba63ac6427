"""Split normalised text into the units the engine tracks: sentences, list items, table rows.

Each unit carries its section path (the heading trail above it) and, for list items, the lead-in
it hangs from ("We don't allow the use of our models for the following:"), because an item such
as "Military and warfare" is only a commitment through its lead-in.

A regex splitter with an abbreviation list rather than pysbd: pysbd needs about 1.25 s for
300 KB of policy text on this machine, the engine's whole budget; this one needs ~10 ms.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["sentence", "item", "row"]

SECTION_SEPARATOR = " › "

# Tokens that end with a period without ending the sentence ("e.g.", "Inc.", "U.S.").
ABBREVIATIONS = frozenset((
    "e.g", "i.e", "al", "approx", "art", "arts", "ch", "cf", "co", "corp", "dept", "dr", "ed",
    "eds", "est", "fig", "figs", "inc", "jr", "ltd", "llc", "mr", "mrs", "ms", "no", "nos", "p",
    "pp", "para", "paras", "prof", "sec", "secs", "sr", "st", "v", "vs", "viz", "vol", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k",
    "u.n", "e.u", "a.m", "p.m",
))
# "No. 5" and "Sec. 3" abbreviate only before a number; "the answer is no. We" ends a sentence.
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "sec", "secs", "art", "arts", "p", "pp", "para",
                                  "paras", "ch", "vol", "fig", "figs"})

BOUNDARY = re.compile(r"[.!?][.!?]*[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9§])")
"""Where a sentence may end: terminal punctuation, closing quotes/brackets, space, a capital.
(``[.!?][.!?]*`` is ``[.!?]+`` written so that re can skip ahead to the next punctuation mark:
it scans a paragraph several times faster.)"""

WORD = re.compile(r"\w+")
HEADING = re.compile(r"(#+)\s+(.*)")
RULE_CELL = re.compile(r":?-{2,}:?")          # a Markdown table's |---|:---:| line
INITIALS = re.compile(r"(?:[a-z]\.)+[a-z]")    # "u.s", "e.u" (the last period stripped)
NUMBERING = re.compile(
    r"^\s*(?:\d+(?:\.\d+)+\.?|\d+[.)]|\(\d+\)|\(?[a-zA-Z][.)]|\([ivxlIVXL]+\)|[ivxlIVXL]+[.)])\s+"
)
"""Clause numbering at the start of a unit: "1.2", "3.", "(a)", "b)", "(iv)", "ii."."""
_NUMBERING_STARTS = frozenset("0123456789(ivxlIVXL")
"""How an ASCII text with a NUMBERING starts (or else its second character is "." or ")")."""

DATE_STAMP = re.compile(
    r"^(?:\W*)(?:last\s+)?(?:updated|modified|revised|reviewed|published|posted|effective|"
    r"effective\s+date|version\s+date|date\s+of\s+last\s+revision)\b[\s:,-]*(?:on\s+|as\s+of\s+)?"
    r"(?:[\w,./ -]{0,40}\d[\w,./ -]{0,20}|today|yesterday)\W*$",
    re.IGNORECASE,
)
"""A line that only stamps a date ("Last updated: March 3, 2025", "Effective 1/2/2025")."""


@dataclass(frozen=True)
class Unit:
    """One tracked piece of text, exactly as it reads in the document."""

    text: str
    section: tuple[str, ...] = ()
    kind: Kind = "sentence"
    lead: str = ""          # for list items and table rows: the lead-in they complete
    canon: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.canon:
            object.__setattr__(self, "canon", canonical(self.text))

    @property
    def path(self) -> str:
        return SECTION_SEPARATOR.join(self.section)


CONTRACTIONS = re.compile(r"\b(won|can)['’]t\b|n['’]t\b")
EXPANSIONS = {"won": "will not", "can": "cannot"}
BRITISH = ((re.compile(r"(?<=\w\w\w)([iy])s(e|ed|es|ing|ation|ations)\b"), r"\1z\2"),  # organise
           (re.compile(r"(?<=licen|defen|offen)ce\b"), "se"),                         # licence
           (re.compile(r"(?<=\w\w\w)our\b"), "or"),                                   # behaviour
           (re.compile(r"(?<=\w\w\w)ll(ed|ing)\b"), r"l\1"),                          # cancelled
           (re.compile(r"\bjudgement\b"), "judgment"), (re.compile(r"\bcentre\b"), "center"))
"""British spellings read as American ones: the same page served to another country is the
same text. Applied to both versions alike, so an over-eager rule ("otherwize") costs nothing."""


class _Spelling:
    """Words in their American spelling, learnt as they are met. Every BRITISH rule matches
    within one word and ends at its end, so applying them word by word is the same as to the
    whole text; a word seen once then costs a set or dictionary lookup, not six regex passes."""

    LIMIT = 50_000                           # bounded memory: forget all and start again

    def __init__(self) -> None:
        self.same: set[str] = set()          # words no rule changes: nearly all of them
        self.changed: dict[str, str] = {}

    def join(self, words: list[str]) -> str:
        """The words, respelt, joined by single spaces."""
        if self.same.issuperset(words):
            return " ".join(words)
        return " ".join(map(self.word, words))

    def word(self, word: str) -> str:
        if word in self.same:
            return word
        if (known := self.changed.get(word)) is not None:
            return known
        if len(self.same) + len(self.changed) >= self.LIMIT:
            self.same, self.changed = set(), {}
        american = word
        for spelling, replacement in BRITISH:
            american = spelling.sub(replacement, american)
        if american == word:
            self.same.add(word)
        else:
            self.changed[word] = american
        return american


_AMERICAN = _Spelling()


_ASCII_WORDS = bytes(ord(chr(c).lower()) if chr(c).isascii() and (chr(c).isalnum() or chr(c) == "_")
                     else 0x20 for c in range(256))
"""A byte table that lowercases ASCII text (its casefold) and blanks every character outside
\\w: the text's words are then str.split(), four times faster than WORD.findall."""


@functools.lru_cache(maxsize=16384)   # words and lead-ins recur; bounded memory
def canonical(text: str) -> str:
    """Casefolded words only: quotes, dashes, punctuation, numbering, spacing, contractions
    ("won't" = "will not") and British or American spelling never matter."""
    if text.isascii() and "'" not in text:   # NFKC, casefold and contractions change nothing
        if numbering := NUMBERING.match(text):
            text = text[numbering.end():]
        return _AMERICAN.join(text.encode().translate(_ASCII_WORDS).decode().split())
    text = unicodedata.normalize("NFKC", text)
    if numbering := NUMBERING.match(text):
        text = text[numbering.end():]
    text = text.casefold()
    if "'" in text or "’" in text:
        text = CONTRACTIONS.sub(lambda m: EXPANSIONS[m[1]] if m[1] else " not", text)
    if text.isascii():
        words = text.encode().translate(_ASCII_WORDS).decode().split()
    else:
        words = WORD.findall(text)
    return _AMERICAN.join(words)


def sentence_key(text: str) -> str:
    """Identity of a discovered sentence, stable under cosmetic edits ("s:" + 16 hex digits)."""
    return "s:" + hashlib.sha256(canonical(text).encode()).hexdigest()[:16]


_NO_STAMP_STARTS = frozenset(string.ascii_letters + string.digits + "_") - set("lumrpevdLUMRPEVD")
"""ASCII characters no date stamp starts with: most units are decided without the regex."""


def is_date_stamp(text: str) -> bool:
    return text[:1] not in _NO_STAMP_STARTS and bool(DATE_STAMP.match(text))


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph, keeping abbreviations, initials and clause numbers intact."""
    return [paragraph[start:stop] for start, stop in _sentence_spans(paragraph)]


def _sentence_spans(paragraph: str) -> list[tuple[int, int]]:
    """Where each sentence of the paragraph is, whitespace around it excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for boundary in BOUNDARY.finditer(paragraph):
        end = boundary.end()
        piece = paragraph[start:end]
        candidate = piece.strip()
        if _abbreviation_ends(paragraph, start, boundary, candidate):
            continue
        # "1." alone is a clause number, not a sentence (and a numbering holds no space)
        if " " not in candidate and NUMBERING.fullmatch(candidate + " "):
            continue
        left = start + len(piece) - len(piece.lstrip())
        spans.append((left, left + len(candidate)))
        start = end
    piece = paragraph[start:]
    if rest := piece.strip():
        left = start + len(piece) - len(piece.lstrip())
        spans.append((left, left + len(rest)))
    return spans


def _abbreviation_ends(paragraph: str, start: int, boundary: re.Match[str],
                       candidate: str) -> bool:
    """Whether `candidate` (paragraph[start:boundary.end()], stripped) ends with an
    abbreviation. The usual "word. " is decided from the word alone, as _ends_with_abbreviation
    would (a word of letters and digits has nothing to strip), in a quarter of the time."""
    end, dot = boundary.end(), boundary.start()
    if paragraph[dot] == "." and paragraph[dot + 1].isspace():
        word = paragraph[(paragraph.rfind(" ", start, dot) + 1) or start:dot]
        if word.isalnum():
            word = word.casefold()
            if word in NUMBER_ABBREVIATIONS:
                return paragraph[end:end + 1].isdigit()
            return word in ABBREVIATIONS or len(word) == 1 and word.isalpha()
    return _ends_with_abbreviation(candidate, paragraph[end:end + 1])


def _ends_with_abbreviation(candidate: str, following: str) -> bool:
    """`following` is the character after the boundary (only whether it is a digit matters)."""
    words = candidate.rstrip("\"')]").rstrip("!?").rsplit(None, 1)
    if not words:  # a line of bare punctuation ("? Yes": a PDF bullet read as "?")
        return False
    word = words[-1].lstrip("\"'([").casefold()
    if not word.endswith("."):
        return False
    word = word.rstrip(".")
    if word in NUMBER_ABBREVIATIONS:
        return following[:1].isdigit()
    return (word in ABBREVIATIONS or len(word) == 1 and word.isalpha()
            or "." in word and bool(INITIALS.fullmatch(word)))


class _Paragraph:
    """One paragraph's sentences (where they are, text, canonical form) and the units last
    made of them."""

    __slots__ = ("context", "ends", "sentences", "spans", "text", "units")

    def __init__(self, text: str, spans: list[tuple[int, int]],
                 sentences: list[tuple[str, str]]) -> None:
        self.text, self.spans, self.sentences = text, spans, sentences
        self.ends: dict[int, int] | None = None      # sentence end -> its index, when indexed
        self.context: tuple[tuple[str, ...], Kind, str, bool] | None = None
        self.units: list[Unit] = []

    @classmethod
    def of(cls, text: str) -> _Paragraph:
        spans = _sentence_spans(text)
        return cls(text, spans, _canonical_sentences(text, spans))

    def units_in(self, section: tuple[str, ...], kind: Kind, lead: str,
                 stamps: bool) -> list[Unit]:
        """Units are immutable: the same paragraph under the same heading and lead-in (the
        common case in two versions of a document) gives the same unit objects again."""
        context = (section, kind, lead, stamps)
        if context != self.context:
            self.context = context
            self.units = [_unit(text, section, kind, lead, canon) for text, canon in self.sentences
                          if stamps or not is_date_stamp(text)]
        return self.units


class Memo:
    """What splitting one version of a document learnt, for splitting the other: each
    paragraph's sentences and units, and, when the other version misses many of them (it was
    reflowed: paragraphs cut at sentence ends), where each known sentence starts."""

    REFLOWED = 4    # paragraphs of the second version missed before the sentences are indexed
    KEY = 24        # characters of a sentence's start that index it

    def __init__(self) -> None:
        self.paragraphs: dict[str, _Paragraph] = {}
        self.versions = 0                    # texts split with this memo so far
        self.missed = 0
        self.starts: dict[str, list[tuple[_Paragraph, int]]] | None = None

    def paragraph(self, text: str) -> _Paragraph:
        if (known := self.paragraphs.get(text)) is None:
            known = self.paragraphs[text] = self._recut(text) or _Paragraph.of(text)
        return known

    def _recut(self, text: str) -> _Paragraph | None:
        """`text` as a run of consecutive sentences of a known paragraph. split_sentences(text)
        gives that run too: a boundary is found and judged from the characters between the
        sentence's start and the next character after the boundary, which are the same."""
        if self.versions < 2:
            return None
        self.missed += 1
        if self.missed < self.REFLOWED or len(text) < self.KEY:
            return None
        if self.starts is None:
            self.starts = self._index()
        for known, k in self.starts.get(text[:self.KEY], ()):
            start = known.spans[k][0]
            assert known.ends is not None
            if known.text.startswith(text, start) \
                    and (m := known.ends.get(start + len(text))) is not None:
                run = _Paragraph(text, [(a - start, b - start) for a, b in known.spans[k:m + 1]],
                                 known.sentences[k:m + 1])
                if len(known.units) == len(known.sentences):     # no date stamp left out
                    run.context, run.units = known.context, known.units[k:m + 1]
                return run
        return None

    def _index(self) -> dict[str, list[tuple[_Paragraph, int]]]:
        starts: dict[str, list[tuple[_Paragraph, int]]] = defaultdict(list)
        for known in self.paragraphs.values():
            known.ends = {stop: k for k, (_, stop) in enumerate(known.spans)}
            for k, (start, _) in enumerate(known.spans):
                starts[known.text[start:start + self.KEY]].append((known, k))
        return starts


def split(text: str, memo: Memo | None = None, *, stamps: bool = True) -> list[Unit]:
    """Every unit of a normalised text (see monitor.normalise), in reading order; without the
    lines that only stamp a date when `stamps` is false. Two versions of one document share
    most paragraphs: splitting both with one `memo` cuts each shared paragraph once."""
    memo = Memo() if memo is None else memo
    memo.versions += 1
    return _units(text.splitlines(), memo, stamps)


def _canonical_sentences(paragraph: str,
                         spans: list[tuple[int, int]]) -> list[tuple[str, str]]:
    """Each sentence with canonical(sentence). An ASCII paragraph is folded to lowercase words
    once, and each sentence's canonical form is read from its slice of that: the same result
    as canonical() (NFKC changes no ASCII text, casefold is lower, and without an apostrophe
    there is no contraction), at half the cost."""
    if not paragraph.isascii():
        return [(sentence, canonical(sentence))
                for sentence in (paragraph[start:stop] for start, stop in spans)]
    folded = paragraph.encode().translate(_ASCII_WORDS).decode()
    same = _AMERICAN.same
    found: list[tuple[str, str]] = []
    for start, stop in spans:
        sentence = paragraph[start:stop]
        if "'" in sentence:
            found.append((sentence, canonical(sentence)))
            continue
        if (sentence[0] in _NUMBERING_STARTS or sentence[1:2] in (".", ")")) \
                and (numbering := NUMBERING.match(sentence)):
            start += numbering.end()
        words = folded[start:stop].split()
        found.append((sentence, " ".join(words) if same.issuperset(words)
                      else _AMERICAN.join(words)))
    return found


def _unit(text: str, section: tuple[str, ...], kind: Kind, lead: str, canon: str) -> Unit:
    """Unit(text, section, kind, lead, canon) without the frozen dataclass's __init__ (an
    object.__setattr__ per field, then __post_init__): the splitter makes one per sentence, and
    this costs half as much."""
    unit = object.__new__(Unit)
    unit.__dict__.update(text=text, section=section, kind=kind, lead=lead, canon=canon)
    return unit


def tracked_texts(text: str) -> tuple[list[str], list[str]]:
    """The texts and canonical texts of the units split(text, stamps=False) gives, without
    making the units (nor following headings and lead-ins): all a first version needs, at
    half the cost."""
    texts: list[str] = []
    canons: list[str] = []
    known: dict[str, list[tuple[str, str]]] = {}   # a paragraph repeated is cut once
    for kind, block, _ in _blocks(text.splitlines()):
        if kind == "heading":
            continue
        if kind == "row":
            sentences = [(block, canonical(block))]
        elif (sentences := known.get(block)) is None:
            sentences = known[block] = _canonical_sentences(block, _sentence_spans(block))
        for sentence, canon in sentences:
            if not is_date_stamp(sentence):
                texts.append(sentence)
                canons.append(canon)
    return texts, canons


def _blocks(lines: list[str]) -> Iterator[tuple[str, str, int]]:
    """("heading", title, level), ("item", text, depth), ("row", its cells, 0) and
    ("paragraph", text, 0) for each line in order; a blank line or a table's rule gives none."""
    for raw in lines:
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped:
            continue
        if stripped[0] == "#" and (heading := HEADING.match(stripped)):
            yield "heading", heading.group(2).strip(), len(heading.group(1))
        elif stripped.startswith("- ") or stripped == "-":
            yield "item", stripped[2:].strip(), (len(line) - len(stripped)) // 2
        elif stripped[0] == "|":
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if any(cells) and not all(RULE_CELL.fullmatch(c) for c in cells if c):
                yield "row", " | ".join(cells), 0
        else:
            yield "paragraph", stripped, 0


def _units(lines: list[str], memo: Memo, stamps: bool) -> list[Unit]:
    units: list[Unit] = []
    trail: list[tuple[int, str]] = []          # (heading level, heading text)
    section: tuple[str, ...] = ()              # the titles of `trail`
    leads: list[tuple[int, str]] = []          # (list depth, text an item at depth+1 hangs from)
    paragraphs: list[str] = []                 # the last two paragraphs: a list's lead-in, often
    #                                            under a bold pseudo-heading ("Do Not ...")
    for kind, text, level in _blocks(lines):
        if kind == "heading":
            trail = [(lvl, title) for lvl, title in trail if lvl < level]
            trail.append((level, text))
            section = tuple(title for _, title in trail)
            leads, paragraphs = [], []
        elif kind == "item":
            leads = [(d, t) for d, t in leads if d < level]
            lead = " ".join([*paragraphs, *(t for _, t in leads)]).strip()
            units.extend(memo.paragraph(text).units_in(section, "item", lead, stamps))
            leads.append((level, text))
        elif kind == "row":
            if stamps or not is_date_stamp(text):
                units.append(_unit(text, section, "row", " ".join(paragraphs), canonical(text)))
        else:
            leads, paragraphs = [], [*paragraphs[-1:], text]
            units.extend(memo.paragraph(text).units_in(section, "sentence", "", stamps))
    return units
