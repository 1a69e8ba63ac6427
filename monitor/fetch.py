"""Fetch a source over HTTP (or a headless browser): conditional GET, retries, error classification.

Everything that can go wrong on the way to a document ends as a FetchError with a ``kind``
(timeout, dns, connect, http_status, challenge, too_large, content_type, truncated,
redirect_loop, blocked, robots, decode, follow_empty, browser), so a failing site is a
source-health event and never looks like a document whose commitments were removed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from monitor import __version__, store
from monitor.browser import fetch_browser
from monitor.errors import FetchError
from monitor.normalise import html
from monitor.watchlist import Defaults, Source

USER_AGENT = f"CommitmentMonitor/{__version__} (+https://github.com/commitment-monitor)"
ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.5"
MAX_REDIRECTS = 10
ATTEMPTS = 3
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""Longest Retry-After (seconds) waited for within one check; a longer one ends the check."""
BACKOFF = wait_exponential(multiplier=0.5, max=8)
ROBOTS_TTL = 24 * 3600.0


@dataclass(frozen=True)
class Validators:
    """What the previous response said, for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None
    url: str | None = None  # the document they belong to; ignored for any other URL


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


# --- politeness ------------------------------------------------------------------------------


@dataclass
class _HostState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready_at: float = 0.0  # time.monotonic() before which no request may start


class HostGate:
    """At most one request at a time per host, ``gap`` seconds apart; thread-safe.

    ``defer(host, seconds)`` pushes the next request back, e.g. for a Retry-After."""

    def __init__(self, gap: float | timedelta = 1.0) -> None:
        self.gap = gap.total_seconds() if isinstance(gap, timedelta) else gap
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    def _state(self, host: str) -> _HostState:
        with self._lock:
            return self._hosts.setdefault(host.lower(), _HostState())

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        state = self._state(host)
        with state.lock:
            wait = state.ready_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                yield
            finally:
                state.ready_at = max(state.ready_at, time.monotonic() + self.gap)

    def defer(self, host: str, seconds: float) -> None:
        state = self._state(host)
        state.ready_at = max(state.ready_at, time.monotonic() + seconds)


# --- the client ------------------------------------------------------------------------------


def make_client(defaults: Defaults) -> httpx.Client:
    """One client for all sources: timeouts, at most 10 redirects, our User-Agent, and (unless
    ``allow_private``) a guard that refuses private addresses on every redirect hop too."""
    hooks = {} if defaults.allow_private else {"request": [_refuse_private_request]}
    return httpx.Client(
        timeout=httpx.Timeout(defaults.timeout.total_seconds()),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        trust_env=False,
        event_hooks=hooks,
    )


def _refuse_private_request(request: httpx.Request) -> None:
    refuse_private(str(request.url))


def refuse_private(url: str) -> None:
    """Raise FetchError("blocked") when the URL's host resolves to a loopback, link-local,
    private or otherwise non-public address."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise FetchError("dns", f"{redact(url)}: cannot resolve {host!r} ({exc})") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise FetchError("blocked", f"{redact(url)}: {host} resolves to the non-public "
                             f"address {ip}; set 'allow_private: true' in the watchlist defaults "
                             "to allow it")


# --- fetch -----------------------------------------------------------------------------------


def fetch(source: Source, defaults: Defaults, *, client: httpx.Client,
          previous: Validators | None = None, gate: HostGate | None = None,
          now: Callable[[], datetime] = store.utcnow) -> FetchResult:
    """Fetch the source's document once (with retries inside). Raises FetchError."""
    gate = gate or HostGate(defaults.host_gap)
    fetcher = _Fetcher(source, defaults, client, gate)
    started = time.monotonic()
    fetched_at = now()
    if source.follow:
        # A browser renders the landing page, whose link list a script may build; the document
        # it links to (a PDF, mostly) is fetched over HTTP, conditionally.
        landing = (fetcher.browser(source.url) if source.fetch == "browser"
                   else fetcher.get(source.url, None))
        target = follow_link(landing, source.follow)
        result = replace(fetcher.get(target, previous), landing_url=landing.url)
    elif source.fetch == "browser":
        result = fetcher.browser(source.url)
    else:
        result = fetcher.get(source.url, previous)
    return replace(result, fetched_at=fetched_at,
                   elapsed_ms=int((time.monotonic() - started) * 1000))


def follow_link(landing: FetchResult, selector: str) -> str:
    """The absolute URL of the first element matching ``selector`` on the landing page (parsed
    and selected as the normaliser does, so a selector means the same thing everywhere)."""
    root = html.parse(landing.body, landing.charset)
    for element in html.matches(root, selector):
        href = element.get("href") or element.get("src") or element.get("data")
        if href and href.strip():
            return urljoin(landing.url, href.strip())
    raise FetchError("follow_empty", f"{redact(landing.url)}: the follow selector {selector!r} "
                     "matched no link; the landing page changed, update 'follow' in the watchlist")


class _Fetcher:
    """One check's worth of requests for one source, sharing the client, the gate and robots."""

    def __init__(self, source: Source, defaults: Defaults, client: httpx.Client,
                 gate: HostGate) -> None:
        self.defaults = defaults
        self.client = client
        self.gate = gate
        self.robots = source.robots if source.robots is not None else defaults.robots

    def get(self, url: str, previous: Validators | None) -> FetchResult:
        self._check_allowed(url)
        retrying = Retrying(stop=stop_after_attempt(ATTEMPTS), wait=self._wait,
                            retry=retry_if_exception(_worth_retrying), reraise=True)
        return retrying(self._attempt, url, _conditional_headers(url, previous))

    def browser(self, url: str) -> FetchResult:
        self._check_allowed(url)
        with self.gate.slot(_host(url)):
            final_url, html = fetch_browser(url, timeout=self.defaults.timeout.total_seconds())
        if not self.defaults.allow_private:
            refuse_private(final_url)
        body = html.encode("utf-8")
        _refuse_challenge(final_url, 200, {}, body)
        return FetchResult(url=final_url, status=200, body=body, media_type="text/html",
                           fetched_at=store.utcnow(), elapsed_ms=0, charset="utf-8")

    def _check_allowed(self, url: str) -> None:
        if not self.defaults.allow_private:
            refuse_private(url)
        if self.robots and not ROBOTS.allowed(url, self):
            raise FetchError("robots", f"{redact(url)}: robots.txt disallows our crawler here; "
                             "remove 'robots: true' only if you may fetch it anyway")

    @staticmethod
    def _wait(retry_state: RetryCallState) -> float:
        """The server's Retry-After when it gave one, else exponential back-off."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, FetchError) and exc.retry_after is not None:
            return exc.retry_after
        return BACKOFF(retry_state)

    def _attempt(self, url: str, headers: dict[str, str]) -> FetchResult:
        try:
            with self.gate.slot(_host(url)):
                # The deadline starts once this fetch has the host to itself: time spent queued
                # behind a slow page of the same host must not time this page out.
                deadline = time.monotonic() + self.defaults.timeout.total_seconds()
                with self.client.stream("GET", url, headers=headers) as r:
                    if r.status_code == 304 and headers:
                        r.read()  # an unread response would close its connection: keep it
                        return _result(r, b"", "", None, not_modified=True)
                    if r.status_code >= 300:
                        _refuse_bad_status(r, self.gate, deadline)
                    body = _read_capped(r, self.defaults.max_bytes, deadline)
        except httpx.HTTPError as exc:
            raise _classify(exc, url) from None
        final = str(r.url)
        media_type, charset = media_type_of(final, r.headers.get("content-type", ""), body)
        if media_type != "application/pdf":
            _refuse_challenge(final, r.status_code, r.headers, body)
        return _result(r, body, media_type, charset)


def _result(response: httpx.Response, body: bytes, media_type: str, charset: str | None,
            *, not_modified: bool = False) -> FetchResult:
    return FetchResult(url=str(response.url), status=response.status_code, body=body,
                       media_type=media_type, fetched_at=store.utcnow(), elapsed_ms=0,
                       etag=response.headers.get("etag"),
                       last_modified=response.headers.get("last-modified"),
                       not_modified=not_modified, charset=charset)


def _conditional_headers(url: str, previous: Validators | None) -> dict[str, str]:
    if previous is None or previous.url not in (None, url):
        return {}
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and exc.transient and (
        exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def redact(url: str) -> str:
    """The URL without user:password@ (credentials never go into errors or logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# --- reading and judging a response ----------------------------------------------------------


def _refuse_bad_status(response: httpx.Response, gate: HostGate, deadline: float) -> None:
    """Raise the FetchError for a non-2xx answer (a bot challenge is told apart from an error)."""
    status = response.status_code
    url = redact(str(response.url))
    if status in (403, 429, 503):
        _refuse_challenge(url, status, response.headers, _peek(response, deadline))
    retry_after = _retry_after(response.headers.get("retry-after"))
    if retry_after is not None:
        gate.defer(_host(str(response.url)), retry_after)
    transient = status in RETRY_STATUSES
    hint = "the site is overloaded or down; it will be retried" if transient else \
        "check the URL in a browser and update the watchlist"
    raise FetchError("http_status", f"{url}: HTTP {status} {response.reason_phrase}; {hint}",
                     transient=transient, status=status, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - store.utcnow()).total_seconds())


def _peek(response: httpx.Response, deadline: float) -> bytes:
    """The start of an error response, enough to recognise a challenge page (b"" if huge)."""
    try:
        return _read_capped(response, CHALLENGE_READ, deadline)
    except FetchError:
        return b""


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    """The decoded body, refusing more than ``max_bytes`` (decompressed, so a gzip bomb stops
    early) and a response still trickling in after the overall deadline."""
    url = redact(str(response.url))
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"{url}: {declared} bytes exceeds the {max_bytes}-byte "
                         "limit; raise 'max_bytes' in the watchlist defaults if it is expected")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"{url}: body exceeds the {max_bytes}-byte limit "
                             "(after decompression); raise 'max_bytes' if it is expected")
        if time.monotonic() > deadline:
            raise FetchError("timeout", f"{url}: the response was still arriving when the "
                             "overall timeout passed (a slow-drip server?)", transient=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _classify(exc: httpx.HTTPError, url: str) -> FetchError:
    """An httpx exception as a FetchError whose kind says what the user should look at."""
    where = redact(url)
    detail = str(exc) or exc.__class__.__name__
    if isinstance(exc, httpx.TimeoutException):
        return FetchError("timeout", f"{where}: timed out ({exc.__class__.__name__})",
                          transient=True)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchError("redirect_loop", f"{where}: more than {MAX_REDIRECTS} redirects "
                          "(a redirect loop?); open the URL in a browser and use the final one")
    if isinstance(exc, httpx.DecodingError):
        return FetchError("decode", f"{where}: the body cannot be decoded ({detail})")
    if isinstance(exc, httpx.RemoteProtocolError) and "complete message body" in detail:
        return FetchError("truncated", f"{where}: the connection closed before the whole body "
                          f"arrived ({detail})", transient=True)
    if isinstance(exc, httpx.ConnectError) and _is_dns_failure(detail):
        return FetchError("dns", f"{where}: cannot resolve the host name ({detail})",
                          transient="temporary" in detail.lower())
    if isinstance(exc, httpx.TransportError):
        return FetchError("connect", f"{where}: connection failed ({detail})", transient=True)
    return FetchError("connect", f"{where}: request failed ({detail})")


def _is_dns_failure(detail: str) -> bool:
    lowered = detail.lower()
    return any(marker in lowered for marker in (
        "name or service not known", "nodename nor servname", "getaddrinfo failed",
        "temporary failure in name resolution", "no address associated", "name resolution"))


CHALLENGE_TITLES = re.compile(
    r"just a moment|attention required|access denied|are you a robot|are you human|"
    r"security check|captcha|verify you are (?:a )?human|checking your browser|ddos-guard|"
    r"pardon our interruption|request rejected|bot verification|please wait\W*$",
    re.IGNORECASE)
CHALLENGE_MARKERS = (b"cf_chl_opt", b"cf-browser-verification", b"_incapsula_resource",
                     b"px-captcha", b"captcha-delivery.com", b"challenges.cloudflare.com/turnstile")
SMALL_PAGE_MARKERS = (b"enable javascript and cookies", b"captcha", b"verify you are human",
                      b"verify you are a human", b"access denied", b"unusual traffic")
CHALLENGE_READ = 1_000_000
"""How much of a 403/429/503 body is read to tell a bot challenge from a plain error."""
SMALL_PAGE = 20_000
"""A body this small that talks about captchas or cookies is a block page, not a policy."""


def _challenge_header(headers: httpx.Headers | dict[str, str]) -> bool:
    return str(headers.get("cf-mitigated", "")).lower() == "challenge"


def _refuse_challenge(url: str, status: int, headers: httpx.Headers | dict[str, str],
                      body: bytes) -> None:
    """A bot challenge or block page served with 200 is a fetch problem, never a document."""
    head = body[:65536].lower()
    title = re.search(rb"<title[^>]*>(.*?)</title", head, re.DOTALL)
    title_text = title.group(1).decode("utf-8", "replace").strip() if title else ""
    if (_challenge_header(headers) or CHALLENGE_TITLES.search(title_text)
            or any(marker in head for marker in CHALLENGE_MARKERS)
            or len(body) < SMALL_PAGE and any(m in head for m in SMALL_PAGE_MARKERS)):
        shown = f" ({title_text[:60]!r})" if title_text else ""
        raise FetchError("challenge", f"{redact(url)}: HTTP {status} but the page is a bot "
                         f"challenge or block page{shown}; the site refuses automated clients "
                         "(try `fetch: browser`, or a different URL)", status=status)


LFS_POINTER = b"version https://git-lfs"


def media_type_of(url: str, content_type: str, body: bytes) -> tuple[str, str | None]:
    """(media type, charset): the declared type checked against the body's magic bytes.

    A PDF is recognised by %PDF- whatever the header says; a body that claims to be a PDF but
    is not one (e.g. a Git LFS pointer or an HTML error page) is a FetchError("content_type")."""
    declared, _, params = content_type.partition(";")
    declared = declared.strip().lower()
    charset_match = re.search(r"charset=[\"']?([\w.:-]+)", params, re.IGNORECASE)
    charset = charset_match.group(1).lower() if charset_match else None
    start = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if body.startswith(LFS_POINTER):
        raise FetchError("content_type", f"{redact(url)}: the server sent a Git LFS pointer file "
                         f"({len(body)} bytes) instead of the document; link the real file")
    if b"%PDF-" in body[:1024]:
        return "application/pdf", None
    looks_like_markup = start[:1].startswith(b"<")
    if declared == "application/pdf":
        what = "an HTML page" if looks_like_markup else f"{len(body)} bytes that are not a PDF"
        raise FetchError("content_type", f"{redact(url)}: declared application/pdf but the body "
                         f"is {what}; the link may point to an error page or a placeholder")
    if declared in ("", "application/octet-stream", "binary/octet-stream"):
        if looks_like_markup:
            return "text/html", charset
        if _is_text(body):
            return "text/plain", charset
        raise FetchError("content_type", f"{redact(url)}: the body is binary data of unknown "
                         f"type (Content-Type {declared or 'missing'}); watch an HTML, PDF or "
                         "text document")
    return declared, charset


def _is_text(body: bytes) -> bool:
    try:
        body[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 4090  # a multi-byte character cut by the slice
    return b"\x00" not in body[:4096]


# --- robots.txt ------------------------------------------------------------------------------


class RobotsCache:
    """robots.txt per host, fetched through the same client and gate, kept for a day."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsers: dict[str, tuple[float, RobotFileParser]] = {}

    def allowed(self, url: str, fetcher: _Fetcher) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            cached = self._parsers.get(origin)
        if cached is None or time.monotonic() - cached[0] > ROBOTS_TTL:
            cached = (time.monotonic(), self._load(origin, fetcher))
            with self._lock:
                self._parsers[origin] = cached
        return cached[1].can_fetch(USER_AGENT, url)

    def clear(self) -> None:
        with self._lock:
            self._parsers.clear()

    @staticmethod
    def _load(origin: str, fetcher: _Fetcher) -> RobotFileParser:
        parser = RobotFileParser(origin + "/robots.txt")
        try:
            with fetcher.gate.slot(_host(origin)):
                response = fetcher.client.get(origin + "/robots.txt")
        except httpx.HTTPError:
            parser.parse([])  # unreachable robots.txt: nothing is disallowed
            return parser
        if response.status_code in (401, 403):
            parser.disallow_all = True
        elif response.status_code >= 400:
            parser.parse([])
        else:
            parser.parse(response.text.splitlines())
        return parser


ROBOTS = RobotsCache()
