"""Render a page in headless Chromium, for sources whose text only appears after JavaScript runs.

Debian's ``chromium`` package is driven by the ``playwright`` Python package through
``executable_path``: Playwright's own browser downloads are not needed (and fail offline).
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress

from monitor.errors import FetchError

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
NETWORK_ERRORS = {
    "ERR_NAME_NOT_RESOLVED": "dns",
    "ERR_NAME_RESOLUTION_FAILED": "dns",
    "ERR_CONNECTION_REFUSED": "connect",
    "ERR_CONNECTION_RESET": "connect",
    "ERR_ADDRESS_UNREACHABLE": "connect",
    "ERR_TIMED_OUT": "timeout",
    "ERR_TOO_MANY_REDIRECTS": "redirect_loop",
}


def chromium_path() -> str | None:
    """$CHROMIUM_PATH, else Debian's chromium on PATH."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def fetch_browser(url: str, *, timeout: float) -> tuple[str, str]:
    """(final URL, rendered HTML). Waits for the load event, then for the network to go quiet
    within ``timeout`` seconds. Raises FetchError."""
    executable = chromium_path()
    if executable is None:
        raise FetchError("browser", f"{url}: this source needs a browser (`fetch: browser`) but "
                         "Chromium was not found; install it with `apt-get install chromium` "
                         "or set CHROMIUM_PATH")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ms = timeout * 1000
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                                 headless=True, timeout=ms)
            try:
                page = browser.new_page()
                response = page.goto(url, wait_until="load", timeout=ms)
                if response is not None and response.status >= 400:
                    raise FetchError("http_status", f"{url}: HTTP {response.status} in the "
                                     "browser", status=response.status,
                                     transient=response.status in (429, 502, 503, 504))
                _settle(page, ms, PlaywrightTimeout)
                return page.url, page.content()
            finally:
                browser.close()
    except PlaywrightTimeout:
        raise FetchError("timeout", f"{url}: the page did not finish loading in the browser "
                         f"within {timeout:g} s", transient=True) from None
    except PlaywrightError as exc:
        raise _classify(url, exc.message) from None


def _settle(page: object, ms: float, timeout_error: type[Exception]) -> None:
    """Give scripts a chance to fetch and render the text; a page that never goes quiet
    (analytics beacons, long polling) is taken as it is once the time is up."""
    with suppress(timeout_error):
        page.wait_for_load_state("networkidle", timeout=ms)  # type: ignore[attr-defined]


def _classify(url: str, message: str) -> FetchError:
    first_line = message.splitlines()[0] if message else "unknown error"
    for code, kind in NETWORK_ERRORS.items():
        if code in message:
            return FetchError(kind, f"{url}: {code} in the browser", transient=kind != "dns")
    return FetchError("browser", f"{url}: the browser failed ({first_line})", transient=True)
