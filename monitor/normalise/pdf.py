"""PDF -> normalised text with pypdfium2 (pypdf when pdfium rejects a file).

pypdfium2 was measured best on a 30-page two-column document (reading order kept, 0.03 s, and it
marks line-break hyphens, U+FFFE in get_text_range, so "exam-/ples" is repaired while "net-zero"
is not; see shared/reference/dependency-trials.md section 4). Running headers, footers and page
numbers are removed and lines are joined into paragraphs, so a re-exported PDF gives the same text.
"""

from __future__ import annotations

import io
import logging
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from monitor.errors import NormaliseError
from monitor.normalise.text import BULLET, fold, list_item, paragraph

log = logging.getLogger(__name__)

EDGE_LINES = 2
"""How many lines at the top and at the bottom of a page may be running headers or footers."""
PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?\W*$", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?:;)\"']$")
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
    lines = _strip_running_lines(pages)
    return "\n".join(_paragraphs(lines)), title


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
    spans: list[tuple[int, int]] = []
    begin = 0
    for match in re.finditer(r"\r\n|\n", text):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(text)))
    spans = [(a, b) for a, b in spans if text[a:b].strip()]
    # A line that pdfium joined at a hyphen spans two printed lines: measure from its last
    # character to the first character of the next line.
    firsts = [_box(textpage, text, range(a, b)) for a, b in spans]
    lasts = [_box(textpage, text, range(b - 1, a - 1, -1)) for a, b in spans]
    drops = [_drop(above, below) for above, below in zip(lasts, firsts[1:], strict=False)]
    # Line spacing: the tightest drop between two lines that is not a superscript's.
    spacing = [d for d, box in zip(drops, lasts, strict=False) if box and d and d >= 0.9 * box[2]]
    pitch = min(spacing, default=0.0)
    breaks = [None, *(drop > 1.3 * pitch if drop and pitch else None for drop in drops)]
    lines = [Line(fold(text[a:b].replace("\ufffe", "")), gap, box[0] if box else None)
             for (a, b), gap, box in zip(spans, breaks[:len(spans)], firsts, strict=True)]
    return [line for line in lines if line.text]


def _box(textpage: pdfium.PdfTextPage, text: str,
         indexes: range) -> tuple[float, float, float] | None:
    """(left, bottom, height) of the font box of the first visible character in ``indexes``."""
    for index in indexes:
        if not text[index].isspace():
            left, bottom, _, top = textpage.get_charbox(index, loose=True)
            return left, bottom, top - bottom
    return None


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


def _strip_running_lines(pages: list[list[Line]]) -> list[Line]:
    """Drop page numbers and lines repeated at the top or bottom of most pages."""
    running = _running_lines(pages)
    kept: list[Line] = []
    for page in pages:
        last = len(page) - 1
        for i, line in enumerate(page):
            at_edge = i < EDGE_LINES or last - i < EDGE_LINES
            if at_edge and (PAGE_NUMBER.match(line.text) or _shape(line.text) in running):
                continue
            kept.append(line)
    return kept


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
    starts a list item."""
    out: list[str] = []
    current: list[str] = []
    is_item = mark_above = False
    bullet_at: float | None = None               # where the current item's bullet stands

    def flush() -> None:
        if current:
            joined = " ".join(current)
            out.append(list_item(joined, 0) if is_item else paragraph(joined))
            current.clear()

    for line in lines:
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
