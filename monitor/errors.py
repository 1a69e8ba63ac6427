"""Every error the monitor raises on purpose.

* MonitorError
  x WatchlistError      the watchlist file is unreadable or invalid (carries every problem found)
  x SourceError         one source could not be checked this time; ``kind`` says why
    + FetchError        it could not be fetched (timeout, dns, http_status, challenge, ...)
    + NormaliseError    its body gave no trustworthy text (selector_empty, pdf_encrypted, ...)
  x DeliveryError       one alert could not reach one target; ``permanent``: retrying is futile

A FetchError or NormaliseError is a source-health event: it is recorded as a failed check and
never becomes a "commitment removed" finding.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base class: everything the monitor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a watchlist file, located so the user can fix it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class WatchlistError(MonitorError):
    """The watchlist could not be loaded; ``problems`` lists every mistake with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SourceError(MonitorError):
    """A source could not be checked this time. ``kind`` is a short machine word for the cause."""

    def __init__(self, kind: str, message: str, *, transient: bool = False) -> None:
        self.kind = kind
        self.transient = transient
        super().__init__(message)


class FetchError(SourceError):
    """Fetching failed. Kinds: timeout, dns, connect, http_status, challenge, too_large,
    content_type, truncated, redirect_loop, decode, blocked, robots, follow_empty, browser."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(kind, message, transient=transient)
        self.status = status
        self.retry_after = retry_after


class NormaliseError(SourceError):
    """The body was fetched but yields no trustworthy text. Kinds: selector_empty, empty,
    too_deep, unsupported_type, pdf_encrypted, pdf_image_only, pdf_corrupt, and collapsed (the
    detect engine found most of the document gone at once)."""


class DeliveryError(MonitorError):
    """Sending one alert to one target failed; ``permanent`` (bad credentials) stops retries."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)
