"""Fetching over loopback: conditional GET, retries, error kinds, caps, follow, robots, politeness.

Faults the `site` fixture cannot produce (a body shorter than its Content-Length, a slow drip)
come from `raw`, a socket server whose routes write bytes by hand.
"""

from __future__ import annotations

import gzip
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import Response, Site
from tenacity import wait_fixed

from monitor import fetch as fetch_module
from monitor.errors import FetchError
from monitor.fetch import HostGate, Validators, fetch, make_client
from monitor.watchlist import Defaults, Source

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = "<html><head><title>Policy</title></head><body><p>We will not sell data.</p></body></html>"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen, without the production back-off between them."""
    monkeypatch.setattr(fetch_module, "BACKOFF", wait_fixed(0.01))
    fetch_module.ROBOTS.clear()


class Timed:
    """A route serving ``responses`` in turn (the last repeating) that notes when each request
    arrived (monotonic clock)."""

    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.arrivals: list[float] = []

    def __call__(self, handler: BaseHTTPRequestHandler) -> Response:
        self.arrivals.append(time.monotonic())
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


def defaults(**overrides: object) -> Defaults:
    return Defaults(**{"timeout": 2, "host_gap": 0.01, **overrides})  # type: ignore[arg-type]


def source(url: str, **overrides: object) -> Source:
    return Source(id="s", company="Acme", title="Policy", url=url, **overrides)  # type: ignore[arg-type]


def get(url: str, *, previous: Validators | None = None, gate: HostGate | None = None,
        defaults_: Defaults | None = None, **source_fields: object):
    settings = defaults_ or defaults()
    with make_client(settings) as client:
        return fetch(source(url, **source_fields), settings, client=client, previous=previous,
                     gate=gate, now=lambda: NOW)


def fetch_error(url: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        get(url, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- a server for faults that well-formed HTTP cannot express ----------------------------------


class RawSite:
    def __init__(self) -> None:
        self.routes: dict[str, Callable[[socketserver.StreamRequestHandler], None]] = {}
        routes = self.routes

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path = request_line.split(" ")[1] if " " in request_line else "/"
                routes[path](self)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def raw() -> Iterator[RawSite]:
    server = RawSite()
    yield server
    server.server.shutdown()
    server.server.server_close()


# --- success and conditional GET ---------------------------------------------------------------


def test_plain_fetch_returns_body_media_type_charset_and_time(site: Site) -> None:
    url = site.set("/p", POLICY, content_type="text/html; charset=ISO-8859-1")
    result = get(url)
    assert (result.status, result.media_type, result.charset) == (200, "text/html", "iso-8859-1")
    assert result.body == POLICY.encode() and result.url == url and result.fetched_at == NOW
    assert site.requests[0][2]["User-Agent"].startswith("CommitmentMonitor/")


def test_etag_and_last_modified_make_the_next_fetch_a_304(site: Site) -> None:
    validators = {"ETag": '"v1"', "Last-Modified": "Sun, 01 Mar 2026 10:00:00 GMT"}

    def conditional(handler: BaseHTTPRequestHandler) -> Response:
        if handler.headers.get("If-None-Match") == '"v1"' and \
                handler.headers.get("If-Modified-Since") == validators["Last-Modified"]:
            return Response(status=304, headers=validators)
        return Response(POLICY, headers=validators)

    url = site.set("/p", conditional)
    first = get(url)
    assert (first.etag, first.last_modified) == ('"v1"', validators["Last-Modified"])
    second = get(url, previous=Validators(first.etag, first.last_modified, url=first.url))
    assert second.not_modified and second.status == 304 and second.body == b""


def test_validators_of_another_url_are_not_sent(site: Site) -> None:
    url = site.set("/p", POLICY)
    get(url, previous=Validators('"v1"', None, url=site.url("/old.pdf")))
    assert "If-None-Match" not in site.requests[0][2]


# --- retries and HTTP errors -------------------------------------------------------------------


def test_503_is_retried_then_succeeds(site: Site) -> None:
    url = site.set("/p", [Response("busy", status=503), Response(POLICY)])
    assert get(url).body == POLICY.encode()
    assert site.hits("/p") == 2


def test_429_retry_after_is_honoured(site: Site) -> None:
    route = Timed(Response("slow down", status=429, headers={"Retry-After": "1"}),
                  Response(POLICY))
    assert get(site.set("/p", route)).status == 200
    first, second = route.arrivals
    assert second - first >= 0.9


def test_retry_after_longer_than_the_cap_ends_the_check_without_waiting(site: Site) -> None:
    url = site.set("/p", Response("later", status=429, headers={"Retry-After": "3600"}))
    error = fetch_error(url)
    assert (error.kind, error.status, error.retry_after) == ("http_status", 429, 3600.0)
    assert site.hits("/p") == 1


def test_500_is_an_http_status_error_that_is_not_retried(site: Site) -> None:
    url = site.set("/p", Response("oops", status=500))
    error = fetch_error(url)
    assert (error.kind, error.status, error.transient) == ("http_status", 500, False)
    assert site.hits("/p") == 1


def test_404_is_http_status_and_not_transient(site: Site) -> None:
    error = fetch_error(site.url("/missing"))
    assert (error.kind, error.status, error.transient) == ("http_status", 404, False)
    assert "404" in str(error) and site.url("/missing") in str(error)


def test_timeout_is_a_transient_timeout_error(site: Site) -> None:
    url = site.set("/p", Response(POLICY, delay=1.0))
    error = fetch_error(url, defaults_=defaults(timeout=0.2))
    assert (error.kind, error.transient) == ("timeout", True)
    assert site.hits("/p") == fetch_module.ATTEMPTS


def test_connection_refused_is_a_connect_error() -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as server:
        port = server.server_address[1]
    error = fetch_error(f"http://127.0.0.1:{port}/p")
    assert (error.kind, error.transient) == ("connect", True)


# --- pages that are not what they claim --------------------------------------------------------


@pytest.mark.parametrize("page", [
    "<html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>",
    "<html><head><title>Attention Required! | Cloudflare</title></head><body></body></html>",
    "<html><body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>",
    "<html><head><title>Access Denied</title></head><body>Reference #18.2f</body></html>",
    "<html><body><div class='g-recaptcha'>Please complete the captcha</div></body></html>",
])
def test_bot_challenge_page_served_with_200_is_a_fetch_error_not_a_removal(
        site: Site, page: str) -> None:
    error = fetch_error(site.set("/p", page))
    assert error.kind == "challenge" and error.status == 200


def test_cloudflare_403_challenge_is_told_apart_from_a_plain_403(site: Site) -> None:
    url = site.set("/p", Response("<html><title>Just a moment...</title></html>", status=403,
                                  headers={"cf-mitigated": "challenge"}))
    assert fetch_error(url).kind == "challenge"
    assert fetch_error(site.set("/q", Response("Forbidden", status=403))).kind == "http_status"


def test_a_huge_403_is_still_an_http_status_error(site: Site) -> None:
    url = site.set("/p", Response("x" * (fetch_module.CHALLENGE_READ + 10), status=403))
    error = fetch_error(url)
    assert (error.kind, error.status) == ("http_status", 403)


def test_a_long_policy_that_mentions_captcha_is_not_a_challenge(site: Site) -> None:
    page = "<html><body>" + "<p>We use reCAPTCHA to stop abuse of our forms.</p>" * 600 + "</body>"
    assert get(site.set("/p", page)).media_type == "text/html"


def test_git_lfs_pointer_served_as_pdf_is_a_content_type_error(site: Site) -> None:
    pointer = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
               "size 12345\n")
    error = fetch_error(site.set("/f.pdf", pointer, content_type="application/pdf"))
    assert error.kind == "content_type" and "LFS" in str(error)


def test_html_served_as_pdf_is_a_content_type_error(site: Site) -> None:
    error = fetch_error(site.set("/f.pdf", POLICY, content_type="application/pdf"))
    assert error.kind == "content_type" and "HTML" in str(error)


def test_pdf_is_recognised_by_magic_bytes_when_the_header_lies(site: Site, pdf_factory) -> None:
    body = pdf_factory([["We will publish our evaluations."]])
    for content_type in ("application/octet-stream", "text/html"):
        assert get(site.set("/f", body, content_type=content_type)).media_type == "application/pdf"


def test_missing_content_type_is_sniffed(site: Site) -> None:
    assert get(site.set("/p", POLICY, content_type="")).media_type == "text/html"
    assert get(site.set("/t", "We will not.", content_type="")).media_type == "text/plain"


# --- hostile bodies ----------------------------------------------------------------------------


def test_body_over_the_size_cap_is_too_large(site: Site) -> None:
    error = fetch_error(site.set("/big", "x" * 5000), defaults_=defaults(max_bytes=2048))
    assert error.kind == "too_large" and "2048" in str(error)


def test_gzip_bomb_is_stopped_by_the_decompressed_size(site: Site) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    url = site.set("/bomb", Response(bomb, headers={"Content-Encoding": "gzip"}))
    assert len(bomb) < 100_000
    error = fetch_error(url, defaults_=defaults(max_bytes=1_000_000))
    assert error.kind == "too_large" and "decompression" in str(error)


def test_broken_gzip_is_a_decode_error(site: Site) -> None:
    url = site.set("/p", Response(b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    assert fetch_error(url).kind == "decode"


def test_body_shorter_than_content_length_is_truncated(raw: RawSite) -> None:
    def short(handler: socketserver.StreamRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                            b"Content-Length: 1000\r\n\r\n<p>We will")

    raw.routes["/p"] = short
    error = fetch_error(raw.url("/p"))
    assert (error.kind, error.transient) == ("truncated", True)


def drip(handler: socketserver.StreamRequestHandler) -> None:
    """A response that trickles a few bytes every 20 ms, for up to 40 s."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 100000\r\n\r\n")
    try:
        for _ in range(2000):
            handler.wfile.write(b"<p>.</p>")
            handler.wfile.flush()
            time.sleep(0.02)
    except OSError:
        pass  # the client gave up, as it should


def test_slow_drip_response_ends_with_a_timeout_at_the_overall_deadline(raw: RawSite) -> None:
    raw.routes["/p"] = drip
    started = time.monotonic()
    error = fetch_error(raw.url("/p"), defaults_=defaults(timeout=0.3))
    assert error.kind == "timeout" and "overall" in str(error)
    assert time.monotonic() - started < 5


def test_redirect_loop_is_a_redirect_loop_error(site: Site) -> None:
    url = site.set("/loop", Response(status=302, headers={"Location": "/loop"}))
    error = fetch_error(url)
    assert error.kind == "redirect_loop"
    assert site.hits("/loop") == fetch_module.MAX_REDIRECTS + 1


def test_redirects_are_followed_and_the_final_url_reported(site: Site) -> None:
    site.set("/new", POLICY)
    result = get(site.set("/old", Response(status=301, headers={"Location": "/new"})))
    assert result.url == site.url("/new")


# --- guards ------------------------------------------------------------------------------------


def test_private_addresses_are_refused_when_not_allowed(site: Site) -> None:
    url = site.set("/p", POLICY)
    error = fetch_error(url, defaults_=defaults(allow_private=False))
    assert error.kind == "blocked" and "allow_private" in str(error)
    assert site.hits("/p") == 0


def test_private_guard_applies_to_every_request_the_client_makes_including_redirects() -> None:
    """The guard is a request hook, so httpx runs it for each redirect hop as well."""
    with make_client(defaults(allow_private=False)) as client, \
            pytest.raises(FetchError) as caught:
        client.get("http://169.254.169.254/latest/meta-data/")
    assert caught.value.kind == "blocked"


def test_robots_txt_disallow_is_respected_when_asked(site: Site) -> None:
    site.set("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    url = site.set("/private/policy", POLICY)
    assert fetch_error(url, robots=True).kind == "robots"
    assert site.hits("/private/policy") == 0
    assert get(url).body == POLICY.encode()  # robots only when the watchlist says so
    assert get(site.set("/public", POLICY), robots=True).status == 200
    assert site.hits("/robots.txt") == 1  # cached per host


def test_credentials_in_a_url_never_appear_in_errors(site: Site) -> None:
    url = site.url("/missing").replace("http://", "http://user:hunter2@")
    error = fetch_error(url)
    assert "hunter2" not in str(error)


# --- follow: a landing page that links to the current version ----------------------------------


def test_follow_tracks_the_linked_document_and_notices_a_new_target(site: Site) -> None:
    landing = '<html><body><a class="current" href="{}">Current version</a></body></html>'
    site.set("/v1.txt", "Version one.", content_type="text/plain")
    site.set("/docs/v2.txt", "Version two.", content_type="text/plain")
    url = site.set("/framework", [Response(landing.format("/v1.txt")),
                                  Response(landing.format("docs/v2.txt"))])
    first = get(url, follow="a.current")
    assert (first.url, first.landing_url, first.body) == (site.url("/v1.txt"), url,
                                                          b"Version one.")
    second = get(url, follow="a.current")
    assert (second.url, second.body) == (site.url("/docs/v2.txt"), b"Version two.")


def test_follow_reads_the_landing_page_as_the_normaliser_selects(site: Site) -> None:
    """A link in a <template> is not on the page; a class is found between any whitespace."""
    landing = ("<html><body><template><a class='doc' href='/draft.txt'>Draft</a></template>"
               "<a class='doc\u00a0current' href='/v1.txt'>Current</a></body></html>")
    site.set("/v1.txt", "Version one.", content_type="text/plain")
    url = site.set("/framework", landing)
    assert get(url, follow=".current, a.doc").url == site.url("/v1.txt")


def test_follow_selector_matching_nothing_names_url_and_selector(site: Site) -> None:
    url = site.set("/framework", "<html><body><a href='/x'>Old</a></body></html>")
    error = fetch_error(url, follow="a.current")
    assert error.kind == "follow_empty" and url in str(error) and "a.current" in str(error)


# --- politeness --------------------------------------------------------------------------------


def test_host_gate_spaces_requests_to_one_host(site: Site) -> None:
    route = Timed(Response(POLICY))
    url = site.set("/p", route)
    gate = HostGate(gap=0.3)
    settings = defaults()
    with make_client(settings) as client:
        threads = [threading.Thread(target=fetch, args=(source(url), settings),
                                    kwargs={"client": client, "gate": gate}) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    arrivals = sorted(route.arrivals)
    assert len(arrivals) == 3
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 0.3 * 0.9


def test_host_gate_accepts_a_timedelta_gap() -> None:
    from datetime import timedelta

    assert HostGate(timedelta(seconds=2)).gap == 2.0


def test_make_client_ignores_proxy_settings(monkeypatch: pytest.MonkeyPatch, site: Site) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    assert get(site.set("/p", POLICY)).status == 200


def test_time_queued_behind_a_slow_page_of_the_same_host_does_not_time_out_the_next(
        raw: RawSite, site: Site) -> None:
    raw.routes["/slow"] = drip
    healthy = [site.set(f"/ok{i}", POLICY) for i in range(2)]
    settings = defaults(timeout=0.5, host_gap=0.2)
    gate = HostGate(settings.host_gap)
    outcomes: dict[str, object] = {}

    def run(url: str) -> None:
        with make_client(settings) as client:
            try:
                outcomes[url] = fetch(source(url), settings, client=client, gate=gate).status
            except FetchError as exc:
                outcomes[url] = exc.kind

    slow = threading.Thread(target=run, args=(raw.url("/slow"),))
    slow.start()
    time.sleep(0.05)  # let the slow page take the host first
    others = [threading.Thread(target=run, args=(url,)) for url in healthy]
    for thread in others:
        thread.start()
    for thread in (slow, *others):
        thread.join(timeout=20)

    assert outcomes[raw.url("/slow")] == "timeout"
    assert [outcomes[url] for url in healthy] == [200, 200]
