"""Recognise a new text that is not the document at all: an error or bot-challenge page served
with 200, a redirect stub, or a page that lost most of its text at once.

Such a text must become a source-health event, never a run of "removed" findings. The fetcher
catches most of these first; this is the engine's own guard for whatever slips through.
"""

from __future__ import annotations

import re

MIN_RATIO = 0.35        # the new text keeps at least this share of the old one's length
MIN_OLD_FOR_RATIO = 1500
STUB_CHARS = 300        # below this, a formerly large document is a stub
SHORT_PAGE = 2500       # error markers count only on a page this short

ERROR_MARKERS = re.compile(r"|".join((
    r"just a moment", r"checking (?:if the site connection is secure|your browser)",
    r"attention required", r"access denied", r"enable (?:javascript|cookies)",
    r"are you (?:a robot|human)", r"captcha", r"verify you are (?:a )?human",
    r"page (?:not found|doesn'?t exist|could not be found)", r"\b40[34]\b", r"\b50[0234]\b",
    r"not found", r"forbidden", r"internal server error", r"service (?:temporarily )?unavailable",
    r"bad gateway", r"too many requests", r"redirecting", r"you are being redirected",
    r"moved permanently", r"(?:sign|log) ?in to continue", r"something went wrong",
    r"an error (?:has )?occurred", r"request (?:blocked|rejected)", r"ddos protection",
    r"this page isn'?t available", r"temporarily unavailable",
)), re.IGNORECASE)


def collapse_reason(old: str | None, new: str) -> str | None:
    """Why `new` looks broken, or None when it looks like a real version of the document."""
    new_size = len(new.strip())
    old_size = len(old.strip()) if old else 0
    if new_size == 0:
        return "the new text is empty"
    shrunk = old_size and new_size < 0.8 * old_size
    if new_size < SHORT_PAGE and (old is None or shrunk) and (marker := ERROR_MARKERS.search(new)):
        return f'the new text looks like an error or challenge page ("{marker.group(0)}", ' \
               f"{new_size} characters)"
    if old_size >= MIN_OLD_FOR_RATIO and new_size < STUB_CHARS:
        return f"the new text is a {new_size}-character stub (was {old_size})"
    if old_size >= MIN_OLD_FOR_RATIO and new_size < MIN_RATIO * old_size:
        return f"the text shrank to {new_size / old_size:.0%} of its length " \
               f"({old_size} -> {new_size} characters)"
    return None
