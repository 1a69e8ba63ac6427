"""PDF -> normalised text with pypdfium2 (pypdf when pdfium rejects a file).

pypdfium2 was measured best on a 30-page two-column document (reading order kept, 0.03 s, and it
marks line-break hyphens with U+0002 so "exam-/ples" is repaired while "net-zero" is not; see
shared/reference/dependency-trials.md section 4). Running headers, footers and page numbers are
removed and lines are joined into paragraphs, so a re-exported PDF gives the same text.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from monitor.errors import NormaliseError
from monitor.normalise.text import BULLET, fold, list_item, paragraph

log = logging.getLogger(__name__)

EDGE_LINES = 3
"""How many lines at the top and at the bottom of a page may be running headers or footers."""
PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?\W*$", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?:;)\"']$")
PLACEHOLDER_TITLES = {"", "untitled", "untitled document"}


def extract(body: bytes, *, url: str) -> tuple[str, str | None]:
    """Return (normalised text, document title). Raises NormaliseError pdf_encrypted,
    pdf_image_only or pdf_corrupt instead of ever returning an empty document."""
    pages, title = _read_pages(body, url)
    if not pages:
        raise NormaliseError("pdf_corrupt", f"{url}: the PDF has no pages")
    if not any(line for page in pages for line in page):
        raise NormaliseError("pdf_image_only", f"{url}: no page of the PDF has a text layer "
                             "(a scanned document?); OCR is not supported")
    lines = _strip_running_lines(pages)
    return "\n".join(_paragraphs(lines)), title


def _read_pages(body: bytes, url: str) -> tuple[list[list[str]], str | None]:
    try:
        return _read_with_pdfium(body)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise _encrypted(url) from None
        log.info("pdfium cannot read %s (%s); trying pypdf", url, exc)
    try:
        return _read_with_pypdf(body)
    except FileNotDecryptedError:
        raise _encrypted(url) from None
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise NormaliseError("pdf_corrupt", f"{url}: the PDF cannot be parsed "
                             f"({exc.__class__.__name__}: {exc}); the file may be damaged "
                             "or not a PDF") from None


def _encrypted(url: str) -> NormaliseError:
    return NormaliseError("pdf_encrypted", f"{url}: the PDF is password-protected; "
                          "its text cannot be read")


def _read_with_pdfium(body: bytes) -> tuple[list[list[str]], str | None]:
    document = pdfium.PdfDocument(body)
    try:
        pages = []
        for page in document:
            raw = page.get_textpage().get_text_bounded()
            # U+0002 marks a hyphen pdfium removed while joining a hyphenated line end.
            text = raw.replace("\x02", "").replace("\r\n", "\n").replace("\r", "\n")
            pages.append(_page_lines(text))
        title = document.get_metadata_dict().get("Title", "")
    finally:
        document.close()
    return pages, _clean_title(title)


def _read_with_pypdf(body: bytes) -> tuple[list[list[str]], str | None]:
    reader = PdfReader(io.BytesIO(body))
    if reader.is_encrypted:
        reader.decrypt("")
    pages = []
    for page in reader.pages:
        # pypdf keeps "exam-\nples": join a hyphen between two lower-case letters at a line end.
        text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", page.extract_text() or "")
        pages.append(_page_lines(text))
    title = reader.metadata.title if reader.metadata else None
    return pages, _clean_title(title or "")


def _page_lines(text: str) -> list[str]:
    return [line for line in (fold(raw) for raw in text.split("\n")) if line]


def _clean_title(title: str) -> str | None:
    title = fold(title)
    return None if title.lower() in PLACEHOLDER_TITLES else title


def _strip_running_lines(pages: list[list[str]]) -> list[str]:
    """Drop page numbers and lines repeated at the top or bottom of most pages."""
    running = _running_lines(pages)
    kept: list[str] = []
    for page in pages:
        last = len(page) - 1
        for i, line in enumerate(page):
            at_edge = i < EDGE_LINES or last - i < EDGE_LINES
            if at_edge and (PAGE_NUMBER.match(line) or _shape(line) in running):
                continue
            kept.append(line)
    return kept


def _running_lines(pages: list[list[str]]) -> set[str]:
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for page in pages:
        seen.update({_shape(line) for line in page[:EDGE_LINES] + page[-EDGE_LINES:]})
    needed = max(2, math.ceil(len(pages) / 2))
    return {shape for shape, count in seen.items() if count >= needed}


def _shape(line: str) -> str:
    """A line with its numbers blanked: "Page 3 of 12" and "Page 4 of 12" are one running line."""
    return re.sub(r"\d+", "#", line.lower())


def _paragraphs(lines: list[str]) -> list[str]:
    """Join wrapped lines into paragraphs. A paragraph ends on a line that is clearly shorter than
    the text width and ends a sentence, or on a short line on its own (a heading); a bullet or
    number starts a list item."""
    if not lines:
        return []
    width = sorted(len(line) for line in lines)[int(len(lines) * 0.9)]
    out: list[str] = []
    current: list[str] = []
    is_item = False

    def flush() -> None:
        nonlocal is_item
        if current:
            joined = " ".join(current)
            out.append(list_item(joined, 0) if is_item else paragraph(joined))
            current.clear()
        is_item = False

    for line in lines:
        if BULLET.match(line):
            flush()
            is_item = True
        current.append(line)
        short = len(line) < 0.75 * width
        if short and (SENTENCE_END.search(line) or len(current) == 1):
            flush()
    flush()
    return [line for line in out if line]
