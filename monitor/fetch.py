"""Fetch a source over HTTP (or a headless browser): conditional GET, retries, error classification.

CONTRACT (implementation pending): see FetchResult and fetch() below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Validators:
    """What the previous response said, for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    url: str                      # final URL, after redirects (and after `follow`)
    status: int                   # HTTP status (304 when not_modified)
    body: bytes                   # b"" when not_modified
    media_type: str               # "text/html", "application/pdf", ... (sniffed when missing/wrong)
    fetched_at: datetime          # UTC, tz-aware
    elapsed_ms: int
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    landing_url: str | None = None  # the page whose `follow` link led to `url`
    charset: str | None = None      # from Content-Type, when the server declared one
