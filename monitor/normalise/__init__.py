"""Turn a fetched body into stable, structured text.

CONTRACT: the normalised text has one block per line, in reading order:
    "# Title" / "## Section" / "### Sub"   headings (level = number of '#')
    "- item"                                 list items (numbers/bullets stripped; nesting as "  - ")
    "| cell | cell |"                        table rows
    any other line                           one paragraph, whitespace folded to single spaces
Quotes are folded to ' and ", dashes to -, no trailing spaces, no empty lines.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMALISER_VERSION = 1


@dataclass(frozen=True)
class Document:
    text: str
    media_type: str
    title: str | None = None
