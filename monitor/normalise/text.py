"""Text folding shared by every normaliser, and the plain-text normaliser itself.

Folding makes cosmetic edits invisible: a page that swaps curly quotes for straight ones, an en
dash for a hyphen, or inserts a zero-width space must give the same text as before.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that never carry meaning in a sentence: zero-width, bidi controls, soft hyphen, BOM.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e" \
             "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
_QUOTES = {"'": "\u2018\u2019\u201a\u201b\u02bc", '"': "\u201c\u201d\u201e\u201f"}
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2e3a\u2e3b"

FOLD = str.maketrans(
    {**dict.fromkeys(_INVISIBLE, None),
     **{c: plain for plain, fancy in _QUOTES.items() for c in fancy},
     **dict.fromkeys(_DASHES, "-")}
)

_RELATIVE_AGE = (r"(?:about |over |almost |nearly )?(?:\d+|an?|one|a few|few)\s+"
                 r"(?:second|sec|minute|min|hour|hr|day|week|month|year)s?\s+ago")
_STAMP = (r"(?:(?:last\s+)?(?:updated|modified|edited|posted|published|reviewed|changed)\b[:\s]*)?"
          rf"(?:{_RELATIVE_AGE}|today|yesterday|just now)")
RELATIVE_DATE = re.compile(rf"^\W*{_STAMP}\b\W*|\W*\b{_STAMP}\W*$", re.IGNORECASE)
"""'Updated 3 days ago', 'Last updated: 2 hours ago', '5 minutes ago' at the start or end of a
line: the page's age, not its text. Inside a sentence ("data collected 30 days ago is
deleted") it is text and stays."""

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December")
DAY_FIRST_DATE = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTHS}),? (\d{{4}})(?!\d)")
"""'15 September 2025': the same page renders it as 'September 15, 2025' in another locale."""
_MONTH = re.compile(_MONTHS)
"""A month's name: four times faster to search than DAY_FIRST_DATE, and most lines have none."""

BULLET = re.compile(
    r"^(?:[\u2022\u00b7\u25aa\u25ab\u25e6\u2023\u2043\u25cf\u25cb\u25a0\u25a1\u2219*+-]"
    r"|\(?(?:\d{1,3}|[a-zA-Z]|[ivxlcdmIVXLCDM]{1,6})[.)])\s+"
)
"""A literal bullet or number typed into a list item ('1.', '(a)', 'iv)', '•')."""


def fold(text: str) -> str:
    """One line of clean text: invisibles removed, quotes/dashes plain, NFKC, whitespace folded."""
    if text.isascii():  # NFKC and FOLD leave ASCII as it is (most text: skip both)
        return " ".join(text.split())
    # NFKC first: it maps fullwidth and presentation forms onto the quotes and dashes folded next.
    return " ".join(unicodedata.normalize("NFKC", text).translate(FOLD).split())


def drop_relative_dates(text: str) -> str:
    lowered = text.lower()  # skip the regex for most lines (any() over a tuple: twice as slow)
    if not ("ago" in lowered or "today" in lowered or "yesterday" in lowered
            or "just now" in lowered):
        return text
    stripped = RELATIVE_DATE.sub("", text)
    return text if stripped == text else " ".join(stripped.split())


def month_first_dates(text: str) -> str:
    return DAY_FIRST_DATE.sub(r"\2 \1, \3", text)


def paragraph(text: str) -> str:
    """A paragraph line: folded, dates written month first, relative dates removed ('' when
    nothing is left)."""
    folded = fold(text)
    if _MONTH.search(folded):  # sub() with a template costs a Python call even unmatched
        folded = month_first_dates(folded)
    return drop_relative_dates(folded) if folded else ""


def list_item(text: str, depth: int) -> str:
    """'- item' indented two spaces per nesting level, with any typed bullet or number removed."""
    body = BULLET.sub("", paragraph(text), count=1)
    return f"{'  ' * depth}- {body}" if body else ""


def heading(text: str, level: int) -> str:
    body = paragraph(text)
    return f"{'#' * level} {body}" if body else ""


def table_row(cells: list[str]) -> str:
    folded = [paragraph(cell).replace("|", "/") for cell in cells]
    return "| " + " | ".join(folded) + " |" if any(folded) else ""


_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_MARKDOWN_ITEM = re.compile(r"^(\s*)(?:[-*+\u2022]|\d{1,3}[.)])\s+(.*)$")


def plain_text_lines(text: str) -> list[str]:
    """Plain (or Markdown-ish) text: blank-line separated paragraphs are joined into one line,
    '#' headings and '-', '*', '1.' list items keep their own lines."""
    lines: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            lines.append(paragraph(" ".join(pending)))
            pending.clear()

    for raw in text.splitlines():
        if not raw.strip():
            flush()
        elif match := _MARKDOWN_HEADING.match(raw.strip()):
            flush()
            lines.append(heading(match.group(2), len(match.group(1))))
        elif match := _MARKDOWN_ITEM.match(raw.expandtabs(4)):
            flush()
            lines.append(list_item(match.group(2), len(match.group(1)) // 2))
        else:
            pending.append(raw)
    flush()
    return [line for line in lines if line]
