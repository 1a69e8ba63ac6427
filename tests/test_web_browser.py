"""The web view in a real headless Chromium, served by uvicorn over loopback: a reader opens the
timeline, follows a change's permalink and sees the changed words marked."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from conftest import Site
from playwright.sync_api import ConsoleMessage, sync_playwright
from sqlalchemy.engine import Engine
from test_web import check_v1_then_v2

from monitor import store
from monitor.watchlist import Watchlist
from monitor.web import create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> Path:
    """Debian's chromium, installed with apt when missing and we are root; else skip, saying why."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run("apt-get update -q && apt-get install -y -q chromium", shell=True,
                       env=env, capture_output=True, timeout=900, check=False)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed "
                    "(run as root with apt, or `apt-get install chromium`)")
    return CHROMIUM


@pytest.fixture
def checked(site: Site, sqlite_url: str) -> Iterator[tuple[Engine, Watchlist]]:
    """A store holding two real checks of a policy page: baseline, then a hedged commitment."""
    engine = store.make_engine(sqlite_url)
    store.create_schema(engine)
    yield engine, check_v1_then_v2(site, engine)
    engine.dispose()


@pytest.fixture
def served(checked: tuple[Engine, Watchlist]) -> Iterator[str]:
    """The app under uvicorn in a thread on an ephemeral 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(*checked), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start within 10 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_reader_follows_a_permalink_and_sees_the_changed_words(served: str,
                                                               tmp_path: Path) -> None:
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(chromium()), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1200, "height": 900})
        try:
            page = browser.new_page()
            page.on("console", lambda m: _note_error(m, problems))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto(served + "/")
            assert page.title() == "Timeline · Commitment Monitor"
            page.get_by_role("link", name="Quarterly safety report").click()
            page.wait_for_url(re.compile(re.escape(served) + r"/changes/\d+$"))

            before, after = page.locator(".evidence .before"), page.locator(".evidence .after")
            assert before.locator("del").all_inner_texts() == ["will"]
            assert after.locator("ins").all_inner_texts() == ["may"]
            assert after.locator("blockquote").inner_text() == (
                "We may publish a safety report every quarter.")
            assert page.locator(".status").inner_text() == "WEAKENED"  # text-transform
            # the stylesheet loaded under the strict CSP: inserted words are tinted
            tint = after.locator("ins").evaluate("e => getComputedStyle(e).backgroundColor")
            assert tint == "rgb(226, 244, 232)"

            shot = tmp_path / "change.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    assert shot.stat().st_size > 20_000


def _note_error(message: ConsoleMessage, problems: list[str]) -> None:
    """CSP violations and failed loads show up as console errors."""
    if message.type == "error":
        problems.append(message.text)
