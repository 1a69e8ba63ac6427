"""PDF -> normalised text with pypdfium2 (pypdf when pdfium rejects a file).

pypdfium2 was measured best on a 30-page two-column document (reading order kept, 0.03 s, and it
marks line-break hyphens, U+FFFE in get_text_range, so "exam-/ples" is repaired while "net-zero"
is not; see shared/reference/dependency-trials.md section 4). Running headers, footers and page
numbers are removed and lines are joined into paragraphs, so a re-exported PDF gives the same text.
"""

from __future__ import annotations

import bisect
import ctypes
import io
import itertools
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from monitor.errors import NormaliseError
from monitor.normalise.text import BULLET, fold, heading, list_item, paragraph

log = logging.getLogger(__name__)

EDGE_LINES = 2
PAGE_KEY_WORDS = 8
"""How many first words of a sentence locate it in a PDF's pages."""
"""How many lines at the top and at the bottom of a page may be running headers or footers."""
PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?\W*$", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?:;)\"']$")
GLYPH_BULLET = re.compile(r"^[^\w(]")
"""A line starting with a drawn bullet ("•", "●", "-"), not a number: a list item, never a
heading."""
HEADING_CHARS = 150       # a longer run of heading-styled lines is an emphasised paragraph
SENTENCE_OR_CLAUSE_END = re.compile(r"[a-z0-9)\"'][.!]$|[,;]$")
"""How a bold sentence ends, where a heading may end "in the U.S.", with a colon or a question
mark ("Who can use our models?")."""
LARGER = 1.15             # a heading's size, at least, over the body text's
BOLD_FONT = re.compile(r"bold|black|heavy|demi", re.IGNORECASE)
"""A bold font's name ("TimesNewRomanPS-BoldMT"): pdfium's font weights are not to be trusted
(0 for Helvetica-Bold, 610 for an italic where the bold is 415, in OpenAI's PDF)."""
PLACEHOLDER_TITLES = {"", "untitled", "untitled document"}
PDFIUM = threading.Lock()
"""PDFium is not thread-safe, not even across documents: two threads in it at once crash or
corrupt the process (pypdfium2's docs), and checks normalise in a thread pool. Every pdfium
call, closing included, happens under this lock."""


def extract(body: bytes, *, url: str) -> tuple[str, str | None]:
    """Return (normalised text, document title). Raises NormaliseError pdf_encrypted,
    pdf_image_only or pdf_corrupt instead of ever returning an empty document."""
    pages, title = _read_pages(body, url)
    if not pages:
        raise NormaliseError("pdf_corrupt", f"{url}: the PDF has no pages")
    if not any(page for page in pages):
        raise NormaliseError("pdf_image_only", f"{url}: no page of the PDF has a text layer "
                             "(a scanned document?); OCR is not supported")
    lines = [line for page in _without_running_lines(pages) for line in page]
    return "\n".join(_paragraphs(lines)), title


def page_of(body: bytes, sentence: str) -> int | None:
    """The page (from 1) on which ``sentence`` of the normalised text begins, to cite a PDF by
    page; None when the file cannot be read or the sentence's first words are not in it."""
    key = " ".join(_words(sentence)[:PAGE_KEY_WORDS])
    try:
        pages, _ = _read_pages(body, url="")
    except NormaliseError:
        return None
    texts = [" ".join(_words(" ".join(line.text for line in page)))
             for page in _without_running_lines(pages)]
    at = " ".join(texts).find(key) if key else -1   # a sentence may run on to the next page
    starts = list(itertools.accumulate((len(text) + 1 for text in texts[:-1]), initial=0))
    return bisect.bisect_right(starts, at) if at >= 0 else None


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _read_pages(body: bytes, url: str) -> tuple[list[list[Line]], str | None]:
    try:
        return _read_with_pdfium(body)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise _encrypted(url) from None
        log.info("pdfium cannot read %s (%s); trying pypdf", url, exc)
    return _read_with_pypdf(body, url)


def _encrypted(url: str) -> NormaliseError:
    return NormaliseError("pdf_encrypted", f"{url}: the PDF is password-protected; "
                          "its text cannot be read")


@dataclass(frozen=True)
class Line:
    text: str
    breaks: bool | None
    """Does a new paragraph start here? True/False from the vertical gap above the line; None
    when the layout cannot tell (first line, a jump to a new column or page)."""
    left: float | None = None
    """Where the line's first character starts across the page (None: unknown, as from pypdf)."""
    size: float | None = None
    """The height of its first character's font box: the font size, in the font's proportions."""
    bold: bool | None = None
    """Are its first and last characters both set in a bold font?"""


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int


def _read_with_pdfium(body: bytes) -> tuple[list[list[Line]], str | None]:
    """Every page's lines and the title. Each page is closed here, under the lock, rather than
    left to a garbage-collector finaliser that could run in another thread at any time."""
    with PDFIUM:
        document = pdfium.PdfDocument(body)
        try:
            pages = [_page_lines(document, index) for index in range(len(document))]
            title = document.get_metadata_dict().get("Title", "")
        finally:
            document.close()
    return pages, _clean_title(title)


def _page_lines(document: pdfium.PdfDocument, index: int) -> list[Line]:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return _pdfium_lines(textpage)
        finally:
            textpage.close()
    finally:
        page.close()


def _pdfium_lines(textpage: pdfium.PdfTextPage) -> list[Line]:
    """The page's lines, each knowing whether a paragraph gap lies above it.

    pdfium numbers the characters of ``get_text_range()`` exactly as its char boxes, so the gap
    between two lines is read from the boxes either side of each line break. U+FFFE marks a
    line-end hyphen pdfium already removed while joining the two halves of a word."""
    text = textpage.get_text_range()
    raw = textpage.raw
    spans: list[tuple[int, int]] = []
    begin = 0
    for match in re.finditer(r"\r\n|\n", text):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(text)))
    spans = [(a, b) for a, b in spans if text[a:b].strip()]
    # A line that pdfium joined at a hyphen spans two printed lines: measure from its last
    # character to the first character of the next line.
    starts = [_visible(text, range(a, b)) for a, b in spans]
    ends = [_visible(text, range(b - 1, a - 1, -1)) for a, b in spans]
    firsts = [_box(textpage, index) for index in starts]
    lasts = [_box(textpage, index) for index in ends]
    drops = [_drop(above, below) for above, below in zip(lasts, firsts[1:], strict=False)]
    # Line spacing: the tightest drop between two lines that is not a superscript's.
    spacing = [d for d, box in zip(drops, lasts, strict=False) if box and d and d >= 0.9 * box[2]]
    pitch = min(spacing, default=0.0)
    breaks = [None, *(drop > 1.3 * pitch if drop and pitch else None for drop in drops)]
    lines = [Line(fold(text[a:b].replace("\ufffe", "")), gap, box[0] if box else None,
                  box[2] if box else None, _bold(raw, start, end))
             for (a, b), gap, box, start, end
             in zip(spans, breaks[:len(spans)], firsts, starts, ends, strict=True)]
    return [line for line in lines if line.text]


def _visible(text: str, indexes: range) -> int | None:
    """The first of ``indexes`` whose character is not a space."""
    return next((index for index in indexes if not text[index].isspace()), None)


def _box(textpage: pdfium.PdfTextPage, index: int | None) -> tuple[float, float, float] | None:
    """(left, bottom, height) of the character's font box."""
    if index is None:
        return None
    left, bottom, _, top = textpage.get_charbox(index, loose=True)
    return left, bottom, top - bottom


def _bold(raw: pdfium_c.FPDF_TEXTPAGE, start: int | None, end: int | None) -> bool | None:
    """Whether both characters are set in a bold font: a line in bold throughout may be a
    heading, one that only starts in bold ("Note: ...") is not."""
    if start is None or end is None:
        return None
    return all(BOLD_FONT.search(_font_name(raw, index)) for index in (start, end))


def _font_name(raw: pdfium_c.FPDF_TEXTPAGE, index: int) -> str:
    name, flags = ctypes.create_string_buffer(128), ctypes.c_int()
    size = pdfium_c.FPDFText_GetFontInfo(raw, index, name, len(name), ctypes.byref(flags))
    if size > len(name):  # a longer name: ask again with room for it
        name = ctypes.create_string_buffer(size)
        pdfium_c.FPDFText_GetFontInfo(raw, index, name, size, ctypes.byref(flags))
    return name.value.decode("latin-1")


def _drop(above: tuple[float, float, float] | None,
          below: tuple[float, float, float] | None) -> float | None:
    """How far the next line sits below this one; None for a jump up (new column) or unknown."""
    if above is None or below is None or below[1] >= above[1]:
        return None
    return above[1] - below[1]


def _read_with_pypdf(body: bytes, url: str) -> tuple[list[list[Line]], str | None]:
    """The fallback for files pdfium rejects (imported only then: it costs 0.1 s at start-up)."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = []
        for page in reader.pages:
            # pypdf keeps "exam-\nples": join a hyphen between two lower-case letters at a line
            # end.
            text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", page.extract_text() or "")
            # It reads a bullet drawn in a symbol font (reportlab's lists) as U+007F, never text.
            text = text.replace("\x7f", "\u2022")
            pages.append([Line(fold(raw), None) for raw in text.split("\n") if fold(raw)])
        title = reader.metadata.title if reader.metadata else None
    except FileNotDecryptedError:
        raise _encrypted(url) from None
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise NormaliseError("pdf_corrupt", f"{url}: the PDF cannot be parsed "
                             f"({exc.__class__.__name__}: {exc}); the file may be damaged "
                             "or not a PDF") from None
    return pages, _clean_title(title or "")


def _clean_title(title: str) -> str | None:
    title = fold(title)
    return None if title.lower() in PLACEHOLDER_TITLES else title


def _without_running_lines(pages: list[list[Line]]) -> list[list[Line]]:
    """The pages without page numbers and lines repeated at the top or bottom of most pages."""
    running = _running_lines(pages)
    return [[line for i, line in enumerate(page)
             if not ((i < EDGE_LINES or len(page) - 1 - i < EDGE_LINES)
                     and (PAGE_NUMBER.match(line.text) or _shape(line.text) in running))]
            for page in pages]


def _running_lines(pages: list[list[Line]]) -> set[str]:
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for page in pages:
        seen.update({_shape(line.text) for line in page[:EDGE_LINES] + page[-EDGE_LINES:]})
    needed = max(2, math.ceil(len(pages) / 2))
    return {shape for shape, count in seen.items() if count >= needed}


def _shape(line: str) -> str:
    """A line with its numbers blanked: "Page 3 of 12" and "Page 4 of 12" are one running line."""
    return re.sub(r"\d+", "#", line.lower())


def _paragraphs(lines: list[Line]) -> list[str]:
    """Join wrapped lines into paragraphs: a wider gap above a line starts a new one; where the
    layout cannot tell (a new page or column), a finished sentence does. A bullet or a number
    starts a list item; a short run of lines set larger or bolder than the text is a heading."""
    out: list[str] = []
    current: list[str] = []
    is_item = mark_above = False
    bullet_at: float | None = None               # where the current item's bullet stands

    def flush() -> None:
        if current:
            joined = " ".join(current)
            out.append(list_item(joined, 0) if is_item else paragraph(joined))
            current.clear()

    for line in _with_headings(lines):
        if isinstance(line, _Heading):
            flush()
            out.append(heading(line.text, line.level))
            is_item = mark_above = False
            continue
        if _is_lone_mark(line.text):  # a bullet drawn apart from its text (pypdf reads it so)
            flush()
            mark_above, bullet_at = True, line.left
            continue
        starts = line.breaks if line.breaks is not None else \
            not current or bool(SENTENCE_END.search(current[-1]))
        if is_item and not starts:
            starts = _back_at_bullet(line, bullet_at, current[-1])
        if mark_above or BULLET.match(line.text) or starts:
            flush()
            if not mark_above:
                bullet_at = line.left
            is_item, mark_above = mark_above or bool(BULLET.match(line.text)), False
        current.append(line.text)
    flush()
    return [line for line in out if line]


def _is_lone_mark(text: str) -> bool:
    """A line holding nothing but a bullet or an item number ("•", "3.", "(a)")."""
    return (mark := BULLET.match(text + " ")) is not None and mark.end() > len(text)


def _back_at_bullet(line: Line, bullet_at: float | None, above: str) -> bool:
    """After a finished sentence, a line that starts where the item's bullet stands (or further
    left) is the text after the list, even when no wider gap sets it apart: an item's own lines
    are indented past its bullet. (A list set without that indent splits only at sentence ends
    that fall at a line's end.)"""
    return line.left is not None and bullet_at is not None and line.left <= bullet_at + 1 \
        and bool(SENTENCE_END.search(above))


def _with_headings(lines: list[Line]) -> Iterator[Line | _Heading]:
    """The lines, each heading among them made one _Heading: a run of lines in one heading style
    (a number starts another run; a gap does not, as a large heading's lines are further apart
    than the text's) that is short and does not end a sentence. PDFs mark headings only by their
    type; the level is the size's rank, larger first, and bold at the text's size comes last."""
    styles = [_style(line) for line in lines]
    levels = _heading_levels(lines, styles)
    k = 0
    while k < len(lines):
        if not (level := levels.get(styles[k])):
            yield lines[k]
            k += 1
            continue
        end = k + 1
        while end < len(lines) and styles[end] == styles[k] and not BULLET.match(lines[end].text):
            end += 1
        text = " ".join(line.text for line in lines[k:end])
        if len(text) <= HEADING_CHARS and not SENTENCE_OR_CLAUSE_END.search(text) \
                and not GLYPH_BULLET.match(text):
            yield _Heading(text, min(level, 6))
        else:
            yield from lines[k:end]
        k = end


def _style(line: Line) -> tuple[float, bool] | None:
    """(size to the half point, bold), when pdfium told both."""
    if line.size is None or line.bold is None:
        return None
    return round(line.size * 2) / 2, line.bold


def _heading_levels(lines: list[Line], styles: list[tuple[float, bool] | None],
                    ) -> dict[tuple[float, bool] | None, int]:
    """The level of each style headings may be set in: larger than the body text (the style of
    most characters), or as large in bold."""
    used: Counter[tuple[float, bool]] = Counter()
    for line, style in zip(lines, styles, strict=True):
        if style is not None:
            used[style] += len(line.text)
    if not used:
        return {}
    [((size, bold), _)] = used.most_common(1)
    larger = sorted({s for s, _ in used if s >= size * LARGER}, reverse=True)
    levels: dict[tuple[float, bool] | None, int] = {
        style: larger.index(style[0]) + 1 for style in used if style[0] in larger}
    levels.update({style: len(larger) + 1 for style in used
                   if abs(style[0] - size) <= 0.5 and style[1] and not bold})
    return levels
