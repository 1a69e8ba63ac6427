"""Turn a fetched body into stable, structured text.

CONTRACT: the normalised text has one block per line, in reading order:
    "# Title" / "## Section" / "### Sub"   headings (level = number of '#')
    "- item"                                 list items (numbers/bullets stripped;
                                             nesting as "  - ")
    "| cell | cell |"                        table rows
    any other line                           one paragraph, whitespace folded to single spaces
Quotes are folded to ' and ", dashes to -, no trailing spaces, no empty lines.

The same document re-rendered (other whitespace, attributes, class names, nonces, script
contents, link URLs, list numbering, relative "updated 3 days ago" stamps) gives the same text;
a PDF re-exported gives the same text. Bump NORMALISER_VERSION whenever the output changes, so
stored versions can be rebuilt from their raw snapshots without raising alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.errors import NormaliseError
from monitor.normalise import html, pdf
from monitor.normalise.text import plain_text_lines

if TYPE_CHECKING:
    from monitor.fetch import FetchResult
    from monitor.watchlist import Source

NORMALISER_VERSION = 2
"""2: PDF headings and list items. A short run of lines set larger, or bold at the text's size,
is a heading; a bullet on a line of its own (pypdf reads reportlab's as U+007F) starts an item,
and a line back where the bullet stands, after a finished sentence, ends one."""


@dataclass(frozen=True)
class Document:
    text: str
    media_type: str
    title: str | None = None


def normalise_html(result: FetchResult, source: Source) -> Document:
    text, title = html.extract(result.body, url=result.url, select=source.select,
                               drop=source.drop, encoding=result.charset)
    return Document(text, result.media_type, title)


def normalise_pdf(result: FetchResult, source: Source) -> Document:
    text, title = pdf.extract(result.body, url=result.url)
    return Document(text, result.media_type, title)


def normalise_plain(result: FetchResult, source: Source) -> Document:
    body = result.body.decode(result.charset or "utf-8", errors="replace")
    text = "\n".join(plain_text_lines(body))
    if not text:
        raise NormaliseError("empty", f"{result.url}: the document has no text")
    return Document(text, result.media_type)


NORMALISERS: dict[str, Callable[[FetchResult, Source], Document]] = {
    "text/html": normalise_html,
    "application/xhtml+xml": normalise_html,
    "application/pdf": normalise_pdf,
    "text/plain": normalise_plain,
    "text/markdown": normalise_plain,
}


def normalise(result: FetchResult, source: Source) -> Document:
    """Dispatch on the (sniffed) media type. Raises NormaliseError(kind) when no trustworthy
    text comes out: selector_empty, empty, pdf_encrypted, pdf_image_only, pdf_corrupt,
    unsupported_type."""
    normaliser = NORMALISERS.get(result.media_type)
    if normaliser is None:
        raise NormaliseError("unsupported_type", f"{result.url}: cannot read {result.media_type!r} "
                             f"documents (supported: {', '.join(sorted(NORMALISERS))})")
    return normaliser(result, source)
