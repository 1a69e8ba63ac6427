"""`fetch: browser`: a page whose text only appears after JavaScript runs, rendered by Chromium.

The tests install Debian's chromium when it is missing and we are root; they skip, saying why,
only when it cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from functools import cache

import pytest
from conftest import Response, Site

from monitor import browser
from monitor.errors import FetchError, NormaliseError
from monitor.fetch import fetch, make_client
from monitor.normalise import normalise
from monitor.watchlist import Defaults, Source

pytestmark = pytest.mark.browser

NOW = datetime(2026, 3, 1, tzinfo=UTC)
RENDERED_BY_SCRIPT = """<!doctype html><html><head><title>Usage policy</title></head><body>
<main id="policy"></main>
<script>
  fetch("/policy.json").then(r => r.json()).then(data => {
    const main = document.getElementById("policy");
    for (const sentence of data.sentences) {
      const p = document.createElement("p");
      p.textContent = sentence;
      main.appendChild(p);
    }
  });
</script></body></html>"""
SENTENCES = ('{"sentences": ["We will not train on your conversations.", '
             '"We delete logs in 30 days."]}')


@cache
def chromium_missing() -> str | None:
    """None when chromium is usable (installing it once if we can), else why it is not."""
    if browser.chromium_path():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium is not installed and we are not root to `apt-get install -y chromium`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300,
                       env=env)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True,
                       timeout=300, env=env)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"chromium could not be installed with apt-get ({exc.__class__.__name__})"
    return None if browser.chromium_path() else "apt-get ran but no chromium binary appeared"


@pytest.fixture
def chromium() -> None:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)


def source(url: str, **fields: object) -> Source:
    return Source(id="js", company="Acme", title="Usage policy", url=url, **fields)  # type: ignore[arg-type]


def check(url: str, how: str) -> str:
    settings = Defaults(timeout=20, host_gap=0.01)  # type: ignore[arg-type]
    src = source(url, fetch=how)
    with make_client(settings) as client:
        result = fetch(src, settings, client=client, now=lambda: NOW)
    return normalise(result, src).text


def test_text_rendered_by_javascript_is_seen_only_through_the_browser(
        chromium: None, site: Site) -> None:
    site.set("/policy.json", SENTENCES, content_type="application/json")
    url = site.set("/usage", RENDERED_BY_SCRIPT)
    assert check(url, "browser") == ("We will not train on your conversations.\n"
                                     "We delete logs in 30 days.")
    with pytest.raises(NormaliseError) as caught:
        check(url, "http")
    assert caught.value.kind == "empty"


LINK_BY_SCRIPT = """<html><body><main id="docs"></main><script>
const a = document.createElement("a"); a.className = "current"; a.href = "/rsp-v3.txt";
a.textContent = "Current version"; document.getElementById("docs").appendChild(a);
</script></body></html>"""


def test_with_follow_the_browser_renders_the_landing_page_and_http_fetches_the_document(
        chromium: None, site: Site) -> None:
    site.set("/rsp-v3.txt", "We will pause training until the risk is contained.",
             content_type="text/plain")
    url = site.set("/rsp", LINK_BY_SCRIPT)
    settings = Defaults(timeout=20, host_gap=0.01)  # type: ignore[arg-type]
    with make_client(settings) as client:
        result = fetch(source(url, fetch="browser", follow="a.current"), settings, client=client,
                       now=lambda: NOW)
        with pytest.raises(FetchError) as caught:  # over plain HTTP the link does not exist
            fetch(source(url, follow="a.current"), settings, client=client, now=lambda: NOW)

    assert (result.url, result.landing_url) == (site.url("/rsp-v3.txt"), url)
    assert result.body == b"We will pause training until the risk is contained."
    assert caught.value.kind == "follow_empty"


def test_browser_http_error_is_an_http_status_fetch_error(chromium: None, site: Site) -> None:
    url = site.set("/gone", Response("gone", status=410))
    with pytest.raises(FetchError) as caught:
        check(url, "browser")
    assert (caught.value.kind, caught.value.status) == ("http_status", 410)


def test_missing_chromium_is_a_clear_browser_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    with pytest.raises(FetchError) as caught:
        browser.fetch_browser("http://127.0.0.1:9/", timeout=1)
    assert caught.value.kind == "browser" and "apt-get install chromium" in str(caught.value)
