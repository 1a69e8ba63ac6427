"""The web view, Atom feeds and JSON API, against real store rows in SQLite (and PostgreSQL where
the query matters), through Starlette's test client."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from conftest import Site, rewrite
from lxml import etree
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from monitor import fetch, pipeline, store, watchlist, web
from monitor.store import Alert, Change, Check, SourceState, Version
from monitor.web import create_app

ATOM = "{http://www.w3.org/2005/Atom}"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
T1 = datetime(2026, 2, 24, 10, 12, tzinfo=UTC)
URL = "https://acme.example/policy"
V1_HTML = (b"<html><body><main><h2>Data</h2><p>We will never sell your data.</p>"
           b"</main></body></html>")
V2_HTML = (b"<html><body><main><h2>Data</h2><p>We will not normally sell your data.</p>"
           b"</main></body></html>")
SCRIPT = "<script>alert(1)</script>"

WATCHLIST_YAML = """
sources:
  - id: acme-policy
    company: Acme AI
    title: Usage Policy
    url: https://acme.example/policy
    commitments:
      - id: no-data-sale
        title: Never sell user data
        quote: We will never sell your data.
      - id: pause
        title: Pause unsafe training
        quote: We will pause training when safeguards lag.
  - id: globex-framework
    company: Globex
    title: Frontier Safety Framework
    url: https://globex.example/framework
  - id: initech-principles
    company: Initech
    title: AI Principles
    url: https://initech.example/principles
"""
WATCHLIST = watchlist.parse(WATCHLIST_YAML, environ={})

POLICY_V1 = """<html><head><title>Acme Usage Policy</title></head><body><main>
<h1>Acme Usage Policy</h1>
<h2>Transparency</h2>
<p>We will publish a safety report every quarter. Reports cover incidents and evaluations.</p>
<h2>Safety</h2>
<p>We will pause training when safeguards lag behind capabilities.</p>
</main><footer>Updated {stamp}</footer></body></html>"""
POLICY_V2 = """<html><head><title>Acme Usage Policy</title></head><body><main>
<h1>Acme Usage Policy</h1>
<h2>Transparency</h2>
<p>We may publish a safety report every quarter. Reports cover incidents and evaluations.</p>
<h2>Safety</h2>
<p>Safety is important to us.</p>
</main><footer>Updated {stamp}</footer></body></html>"""


@dataclass(frozen=True)
class History:
    """Ids of the rows a test looks at."""

    weakened: int
    removed: int
    scripted: int
    globex_added: int
    old_version: int
    new_version: int
    old_sha: str
    new_sha: str


def record_history(engine: Engine) -> History:
    """Two versions of Acme's policy with three changes, a failing Globex source with one older
    change, and Initech never checked: what a few weeks of monitoring leave in the store."""
    with store.session(engine) as s:
        old = s.get(store.Snapshot, store.store_snapshot(
            s, store.pack_snapshot(V1_HTML, "text/html", T0)))
        new = s.get(store.Snapshot, store.store_snapshot(
            s, store.pack_snapshot(V2_HTML, "text/html", T1)))
        v1 = Version(source_id="acme-policy", snapshot_id=old.id, text="## Data\nWe will never "
                     "sell your data.", text_sha256="a" * 64, normaliser_version=1, url=URL,
                     fetched_at=T0)
        v2 = Version(source_id="acme-policy", snapshot_id=new.id, text="## Data\nWe will not "
                     "normally sell your data.", text_sha256="b" * 64, normaliser_version=1,
                     url=URL, fetched_at=T1)
        s.add_all([v1, v2])
        s.flush()
        checks = [Check(source_id="acme-policy", started_at=T0, url=URL, http_status=200,
                        bytes=len(V1_HTML), outcome="baseline", snapshot_id=old.id,
                        version_id=v1.id, duration_ms=120),
                  Check(source_id="acme-policy", started_at=T1, url=URL, http_status=200,
                        bytes=len(V2_HTML), outcome="changed", snapshot_id=new.id,
                        version_id=v2.id, duration_ms=95),
                  Check(source_id="globex-framework", started_at=T1, url="https://globex.example/"
                        "framework", http_status=503, outcome="failed", error_kind="http_status",
                        error="HTTP 503 from https://globex.example/framework")]
        s.add_all(checks)
        s.flush()
        alert = Alert(source_id="acme-policy", check_id=checks[1].id, kind="changes",
                      subject="[WEAKENED] Acme AI · Usage Policy · 3 changes", created_at=T1)
        s.add(alert)
        s.flush()
        evidence = dict(source_id="acme-policy", check_id=checks[1].id, alert_id=alert.id,
                        url=URL, old_version_id=v1.id, new_version_id=v2.id,
                        old_snapshot=old.sha256, new_snapshot=new.sha256, old_fetched_at=T0,
                        new_fetched_at=T1)
        globex_added = Change(source_id="globex-framework", key="s:9f2", status="added",
                              reason="new commitment sentence", after="We will publish "
                              "evaluations before release.", section_after="Evaluations",
                              url="https://globex.example/framework",
                              detected_at=T0 + timedelta(days=1))
        weakened = Change(**evidence, commitment_id="no-data-sale",
                          commitment_title="Never sell user data", key="no-data-sale",
                          status="weakened", reason='hedge inserted: "normally"',
                          before="We will never sell your data.",
                          after="We will not normally sell your data.",
                          diff=json.dumps([["=", "We will"], ["-", "never"],
                                           ["+", "not normally"], ["=", "sell your data."]]),
                          section_before="Data", section_after="Data",
                          detected_at=T1)
        removed = Change(**evidence, commitment_id="pause", commitment_title="Pause unsafe "
                         "training", key="pause", status="removed",
                         reason="sentence no longer in the document",
                         before="We will pause training when safeguards lag.",
                         section_before="Safety › Pausing", detected_at=T1)
        scripted = Change(**evidence, key="s:c0ffee", status="removed",
                          reason=f"the page said {SCRIPT}",
                          before=f"{SCRIPT} We will never track you.",
                          section_before=f"Privacy {SCRIPT}", detected_at=T1)
        s.add_all([globex_added, weakened, removed, scripted])
        s.add_all([
            SourceState(source_id="acme-policy", url=URL, last_checked_at=T1,
                        last_outcome="changed", version_id=v2.id),
            SourceState(source_id="globex-framework", last_checked_at=T1, last_outcome="failed",
                        last_error="http_status: HTTP 503 from https://globex.example/framework",
                        failing_streak=4, failing_since=T1 - timedelta(hours=18)),
        ])
        s.commit()
        return History(weakened=weakened.id, removed=removed.id, scripted=scripted.id,
                       globex_added=globex_added.id, old_version=v1.id, new_version=v2.id,
                       old_sha=old.sha256, new_sha=new.sha256)


def check_v1_then_v2(site: Site, engine: Engine) -> watchlist.Watchlist:
    """The real pipeline checks a policy page on the loopback site twice: a baseline, then a
    version where one commitment is hedged (will -> may) and another is gone."""
    url = site.set("/policy", POLICY_V1.format(stamp="5 January"))
    watched = watchlist.parse(f"""
sources:
  - id: acme-policy
    company: Acme AI
    title: Usage Policy
    url: {url}
    drop: [footer]
    discover: true
    commitments:
      - id: quarterly-report
        title: Quarterly safety report
        quote: We will publish a safety report every quarter.
""", environ={})
    source = watched.source("acme-policy")
    with fetch.make_client(watched.defaults) as client:
        first = pipeline.check_source(source, watched, engine=engine, client=client,
                                      now=lambda: T0)
        site.set("/policy", POLICY_V2.format(stamp="24 February"))
        second = pipeline.check_source(source, watched, engine=engine, client=client,
                                       now=lambda: T1)
    assert (first.outcome, second.outcome, second.changes) == ("baseline", "changed", 2), (
        first, second)
    return watched


@pytest.fixture
def history(sqlite_engine: Engine) -> History:
    return record_history(sqlite_engine)


@pytest.fixture
def client(sqlite_engine: Engine, history: History) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_engine, WATCHLIST)) as test_client:
        yield test_client


def change_ids(page: str) -> list[int]:
    """The permalinks on a timeline page, in order."""
    return [int(i) for i in re.findall(r'<h2><a href="[^"]*/changes/(\d+)"', page)]


def soup(page: str) -> BeautifulSoup:
    return BeautifulSoup(page, "lxml")


def text_of(page: str, selector: str) -> list[str]:
    return [element.get_text() for element in soup(page).select(selector)]


# --- HTML pages ----------------------------------------------------------------------------------


def test_timeline_lists_changes_newest_first_with_changed_words_marked(
        client: TestClient, history: History) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert change_ids(response.text) == [history.scripted, history.removed, history.weakened,
                                         history.globex_added]
    assert text_of(response.text, "del") == ["never"]
    assert text_of(response.text, "ins") == ["not normally"]


def test_timeline_filters_by_company_source_and_status(client: TestClient,
                                                       history: History) -> None:
    assert change_ids(client.get("/?company=Globex").text) == [history.globex_added]
    assert change_ids(client.get("/?company=acme-ai&status=removed").text) == [
        history.scripted, history.removed]
    assert change_ids(client.get("/?source=acme-policy&status=weakened").text) == [
        history.weakened]
    assert change_ids(client.get("/?status=strengthened").text) == []
    # an empty select in the filter form means "all"
    assert len(change_ids(client.get("/?company=&source=&status=").text)) == 4


def test_timeline_pages_backwards_through_older_changes(client: TestClient,
                                                        history: History) -> None:
    first = client.get("/?limit=2")
    assert change_ids(first.text) == [history.scripted, history.removed]
    second = client.get(soup(first.text).select('a[rel="next"]')[0]["href"])
    assert change_ids(second.text) == [history.weakened, history.globex_added]
    assert "← Newest" in second.text
    assert 'rel="next"' not in second.text


@pytest.mark.parametrize(("query", "message"), [
    ("status=bogus", "unknown status 'bogus'; use one of: removed, weakened"),
    ("limit=0", "limit='0' is not valid; give a whole number from 1 to 500"),
    ("limit=lots", "limit='lots' is not valid"),
    ("before_id=-3", "before_id='-3' is not valid; give a whole number of at least 1"),
])
def test_bad_filter_values_are_a_400_that_says_what_is_allowed(
        client: TestClient, query: str, message: str) -> None:
    page = client.get(f"/?{query}")
    assert page.status_code == 400
    assert message in soup(page.text).select("p.error")[0].get_text()
    api = client.get(f"/api/changes?{query}")
    assert api.status_code == 400
    assert message in api.json()["error"]


def test_unknown_company_is_a_404_naming_the_known_ones(client: TestClient) -> None:
    response = client.get("/?company=Hooli")
    assert response.status_code == 404
    assert "known companies: Acme AI, Globex, Initech" in response.text


def test_change_permalink_shows_the_evidence_side_by_side(client: TestClient,
                                                         history: History) -> None:
    response = client.get(f"/changes/{history.weakened}")
    assert response.status_code == 200
    page = soup(response.text)
    before, after = page.select(".evidence .before")[0], page.select(".evidence .after")[0]
    assert before.select("blockquote")[0].get_text() == "We will never sell your data."
    assert after.select("blockquote")[0].get_text() == (
        "We will not normally sell your data.")
    assert [e.get_text() for e in before.select("blockquote del")] == ["never"]
    assert [e.get_text() for e in after.select("blockquote ins")] == ["not normally"]
    assert before.select(".section-path")[0].get_text() == "Data"
    assert f'href="http://testserver/snapshots/{history.old_sha}"' in response.text
    assert f'href="http://testserver/snapshots/{history.new_sha}"' in response.text
    assert f"/versions/{history.old_version}.txt" in response.text
    assert "2026-01-05 08:00 UTC" in before.get_text()
    assert "2026-02-24 10:12 UTC" in after.get_text()
    assert URL in response.text
    assert 'hedge inserted: "normally"' in page.select(".reason")[0].get_text()
    assert "Never sell user data" in page.select("h1")[0].get_text()


def test_change_permalink_gives_a_citation_naming_both_archived_copies(
        client: TestClient, history: History) -> None:
    """What a journalist pastes: the document, the verdict on the commitment, both snapshots by
    their full sha256 (checkable against the downloads) with their fetch times, the permalink."""
    page = soup(client.get(f"/changes/{history.weakened}").text)
    assert page.select(".cite code")[0].get_text() == (
        f'Acme AI, "Usage Policy", {URL}: commitment "Never sell user data" weakened. '
        f"Before: snapshot sha256 {history.old_sha}, fetched 2026-01-05 08:00 UTC. "
        f"After: snapshot sha256 {history.new_sha}, fetched 2026-02-24 10:12 UTC. "
        f"Recorded by Commitment Monitor, http://testserver/changes/{history.weakened} "
        "(detected 2026-02-24 10:12 UTC).")


def test_a_pdf_change_names_the_page_of_each_sentence(client: TestClient, sqlite_engine: Engine,
                                                      pdf_factory) -> None:
    """A PDF is cited by page: each side of the evidence, and the citation, say where the
    sentence stands in that archived copy."""
    before, after = ("We will pause training when safeguards lag.",
                     "We may pause training when safeguards lag.")
    old_pdf = pdf_factory([["Scope of this framework."], [before]])
    new_pdf = pdf_factory([["Scope of this framework."], ["Definitions follow."], [after]])
    with store.session(sqlite_engine) as s:
        for body, at in ((old_pdf, T0), (new_pdf, T1)):
            store.store_snapshot(s, store.pack_snapshot(body, "application/pdf", at))
        change = Change(source_id="acme-policy", key="pause", commitment_id="pause",
                        commitment_title="Pause when safeguards lag", status="weakened",
                        reason='modal downgrade: "will" -> "may"', before=before, after=after,
                        old_snapshot=store.sha256(old_pdf), new_snapshot=store.sha256(new_pdf),
                        old_fetched_at=T0, new_fetched_at=T1, url=URL, detected_at=T1)
        s.add(change)
        s.commit()
        change_id = change.id
    page = soup(client.get(f"/changes/{change_id}").text)
    assert [p.get_text() for p in page.select(".evidence .section-path")] == ["page 2", "page 3"]
    cite = page.select(".cite code")[0].get_text()
    assert "fetched 2026-01-05 08:00 UTC, page 2. After:" in cite
    assert "fetched 2026-02-24 10:12 UTC, page 3. Recorded" in cite


def test_removed_commitment_page_has_no_after_sentence(client: TestClient,
                                                       history: History) -> None:
    page = soup(client.get(f"/changes/{history.removed}").text)
    assert page.select(".evidence .after blockquote")[0].get_text() == "(not present)"
    assert page.select(".evidence .before .section-path")[0].get_text() == (
        "Safety › Pausing")


def test_unknown_change_is_a_404_page(client: TestClient) -> None:
    response = client.get("/changes/999")
    assert response.status_code == 404
    assert "there is no change #999" in response.text
    assert client.get("/no/such/page").status_code == 404


def test_source_page_shows_commitment_status_history_and_health(client: TestClient,
                                                                history: History) -> None:
    response = client.get("/sources/acme-policy")
    assert response.status_code == 200
    page = soup(response.text)
    rows = page.select("table.commitments tbody tr")
    statuses = [row.select(".status")[0].get_text() for row in rows]
    assert statuses == ["weakened", "removed"]
    assert f"/changes/{history.weakened}" in str(rows[0])
    assert len(page.select("table.changes tbody tr")) == 3
    assert [row.select("td")[1].get_text()
            for row in page.select("table.checks tbody tr")] == ["changed", "baseline"]
    assert f"/versions/{history.new_version}.txt" in response.text
    assert page.select(".health-label")[0].get_text() == "ok"


def test_failing_source_page_shows_streak_and_error(client: TestClient) -> None:
    page = soup(client.get("/sources/globex-framework").text)
    facts = page.select("dl.facts")[0].get_text()
    assert "failing" in facts
    assert "4 checks in a row, since 2026-02-23 16:12 UTC" in facts
    assert "HTTP 503 from https://globex.example/framework" in facts


def test_commitment_without_changes_reads_unchanged(client: TestClient, sqlite_engine: Engine,
                                                   history: History) -> None:
    with store.session(sqlite_engine) as s:
        s.delete(s.get(Change, history.removed))
        s.commit()
    page = soup(client.get("/sources/acme-policy").text)
    rows = page.select("table.commitments tbody tr")
    assert rows[1].select(".status")[0].get_text() == "unchanged"


def test_a_commitments_status_survives_hundreds_of_newer_discovered_changes(
        client: TestClient, sqlite_engine: Engine) -> None:
    with store.session(sqlite_engine) as s:  # a rewrite: every sentence of the page is news
        s.add_all(Change(source_id="acme-policy", key=f"s:{n}", status="added",
                         reason="new commitment sentence", after=f"We will do thing {n}.",
                         url=URL, detected_at=T1 + timedelta(days=1))
                  for n in range(web.SOURCE_HISTORY + 1))
        s.commit()
    page = soup(client.get("/sources/acme-policy").text)
    rows = page.select("table.commitments tbody tr")
    assert [row.select(".status")[0].get_text() for row in rows] == ["weakened", "removed"]
    assert len(page.select("table.changes tbody tr")) == web.SOURCE_HISTORY
    assert f"The latest {web.SOURCE_HISTORY}; all changes page back" in " ".join(
        page.get_text(" ").split())


def test_a_source_dropped_from_the_watchlist_keeps_its_history(
        client: TestClient, sqlite_engine: Engine) -> None:
    with store.session(sqlite_engine) as s:
        s.add(Change(source_id="retired-policy", key="s:1", status="removed", reason="gone",
                     before="We will never do that.", url="https://retired.example/",
                     detected_at=T0))
        s.add(SourceState(source_id="retired-policy", last_checked_at=T0,
                          last_outcome="changed"))
        s.commit()
    rows = soup(client.get("/sources").text).select("table.health tbody tr")
    assert "retired-policy (not in the watchlist)" in rows[-1].get_text(" ", strip=True)
    page = client.get("/sources/retired-policy")
    assert page.status_code == 200
    assert "No longer in the watchlist." in page.text
    assert "We will never do that." in client.get("/?source=retired-policy").text


def test_unknown_source_is_a_404(client: TestClient) -> None:
    response = client.get("/sources/nope")
    assert response.status_code == 404
    assert "there is no source 'nope'" in soup(response.text).get_text()


def test_sources_overview_puts_failing_sources_first(client: TestClient) -> None:
    page = soup(client.get("/sources").text)
    rows = [[cell.get_text().strip() for cell in row.select("td")]
            for row in page.select("table.health tbody tr")]
    assert [(row[0], row[1]) for row in rows] == [
        ("failing", "Globex · Frontier Safety Framework"),
        ("never checked", "Initech · AI Principles"),
        ("ok", "Acme AI · Usage Policy"),
    ]
    assert rows[0][4] == "4 checks"
    assert rows[2][5] == "3"


def _overview(page: str) -> tuple[list[str], str]:
    """The source names listed, and the health counts line."""
    html = soup(page)
    names = [row.select("td")[1].get_text().strip() for row in html.select("table.health tbody tr")]
    return names, " ".join(html.select_one("nav.health-counts").get_text().split())


def test_sources_overview_filters_by_health_with_a_count_for_each(client: TestClient) -> None:
    names, counts = _overview(client.get("/sources").text)
    assert len(names) == 3
    assert counts == "all (3) · failing (1) · never checked (1) · ok (1)"
    names, counts = _overview(client.get("/sources", params={"health": "never checked"}).text)
    assert names == ["Initech · AI Principles"]
    assert counts == "all (3) · failing (1) · never checked (1) · ok (1)"
    links = soup(client.get("/sources?health=ok").text).select("nav.health-counts a")
    assert [a["href"] for a in links][:2] == ["http://testserver/sources",
                                              "http://testserver/sources?health=failing"]


def test_sources_overview_filters_by_company_and_says_when_nothing_matches(
        client: TestClient) -> None:
    names, counts = _overview(client.get("/sources?company=globex").text)
    assert names == ["Globex · Frontier Safety Framework"]
    assert counts == "all (1) · failing (1) · never checked (0) · ok (0)"
    page = soup(client.get("/sources?company=Globex&health=ok").text)
    assert page.select("table.health") == []
    assert page.select_one("p.empty").get_text() == "No source matches this filter."
    health_links = [a["href"] for a in page.select("nav.health-counts a")]
    assert "http://testserver/sources?health=failing&company=Globex" in health_links


def test_api_sources_filters_like_the_overview_and_rejects_what_it_cannot_read(
        client: TestClient) -> None:
    failing = client.get("/api/sources?health=failing&company=Globex").json()["sources"]
    assert [s["id"] for s in failing] == ["globex-framework"]
    assert client.get("/api/sources?company=Initech&health=ok").json() == {"sources": []}
    bad = client.get("/api/sources?health=broken")
    assert (bad.status_code, bad.json()) == (400, {
        "error": "unknown health 'broken'; use one of: failing, never checked, ok"})
    unknown = client.get("/api/sources?company=Hooli")
    assert unknown.status_code == 404
    assert "known companies: Acme AI, Globex, Initech" in unknown.json()["error"]

# --- evidence downloads --------------------------------------------------------------------------


def test_snapshot_downloads_the_archived_raw_bytes_as_an_attachment(client: TestClient,
                                                                    history: History) -> None:
    response = client.get(f"/snapshots/{history.old_sha}")
    assert response.status_code == 200
    assert response.content == V1_HTML
    assert response.headers["content-type"] == "text/html"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{history.old_sha[:16]}.html"')
    assert "sandbox" in response.headers.get_list("content-security-policy")


@pytest.mark.parametrize("sha", ["0" * 64, "not-a-hash", "A" * 64])
def test_unknown_or_malformed_snapshot_hash_is_a_404(client: TestClient, sha: str) -> None:
    assert client.get(f"/snapshots/{sha}").status_code == 404


def test_version_text_is_the_normalised_text(client: TestClient, history: History) -> None:
    response = client.get(f"/versions/{history.new_version}.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "## Data\nWe will not normally sell your data."
    assert client.get("/versions/999.txt").status_code == 404


# --- Atom ----------------------------------------------------------------------------------------


def parse_feed(client: TestClient, path: str) -> etree._Element:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return etree.fromstring(response.content)


def assert_valid_atom(feed: etree._Element, self_url: str) -> None:
    """RFC 4287's required elements, with well-formed ids, dates and links."""
    assert feed.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated", "author/{*}name"):
        assert feed.find(f"{ATOM}{tag}") is not None, tag
    assert feed.find(f"{ATOM}id").text.startswith("urn:uuid:")
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == self_url
    datetime.fromisoformat(feed.find(f"{ATOM}updated").text)
    for entry in feed.iterfind(f"{ATOM}entry"):
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry.find(f"{ATOM}id").text)
        assert entry.find(f"{ATOM}title").text
        assert datetime.fromisoformat(entry.find(f"{ATOM}updated").text).tzinfo is not None
        assert re.fullmatch(r"http://testserver/changes/\d+",
                            entry.find(f"{ATOM}link[@rel='alternate']").get("href"))
        assert entry.find(f"{ATOM}content").get("type") == "html"


def entry_links(feed: etree._Element) -> list[str]:
    return [link.get("href").rsplit("/", 1)[1]
            for link in feed.iterfind(f"{ATOM}entry/{ATOM}link[@rel='alternate']")]


def test_atom_feed_of_all_changes_is_valid_atom(client: TestClient, history: History) -> None:
    feed = parse_feed(client, "/feed.atom")
    assert_valid_atom(feed, "http://testserver/feed.atom")
    assert entry_links(feed) == [str(i) for i in (history.scripted, history.removed,
                                                  history.weakened, history.globex_added)]
    assert feed.find(f"{ATOM}updated").text == "2026-02-24T10:12:00Z"
    weakened = feed.findall(f"{ATOM}entry")[2]
    assert weakened.find(f"{ATOM}title").text == (
        "[WEAKENED] Acme AI · Usage Policy · Never sell user data")
    assert weakened.find(f"{ATOM}summary").text == 'hedge inserted: "normally"'
    content = soup(weakened.find(f"{ATOM}content").text)
    assert [e.get_text() for e in content.select("del")] == ["never"]
    assert [e.get_text() for e in content.select("ins")] == ["not normally"]
    assert history.new_sha[:12] in content.get_text()


def test_source_and_company_feeds_hold_only_their_changes(client: TestClient,
                                                          history: History) -> None:
    source = parse_feed(client, "/sources/globex-framework/feed.atom")
    assert_valid_atom(source, "http://testserver/sources/globex-framework/feed.atom")
    assert entry_links(source) == [str(history.globex_added)]
    assert source.find(f"{ATOM}title").text == (
        "Commitment changes: Globex · Frontier Safety Framework")
    company = parse_feed(client, "/companies/acme-ai/feed.atom")
    assert_valid_atom(company, "http://testserver/companies/acme-ai/feed.atom")
    assert entry_links(company) == [str(i) for i in (history.scripted, history.removed,
                                                     history.weakened)]
    empty = parse_feed(client, "/sources/initech-principles/feed.atom")
    assert_valid_atom(empty, "http://testserver/sources/initech-principles/feed.atom")
    assert empty.find(f"{ATOM}entry") is None
    assert client.get("/companies/hooli/feed.atom").status_code == 404


def test_one_commitment_has_its_own_timeline_and_feed(client: TestClient,
                                                      history: History) -> None:
    """Someone following one pledge: its changes alone, linked from the source's page."""
    feed = parse_feed(client, "/sources/acme-policy/commitments/no-data-sale/feed.atom")
    assert_valid_atom(feed, "http://testserver/sources/acme-policy/commitments/no-data-sale/"
                            "feed.atom")
    assert entry_links(feed) == [str(history.weakened)]
    assert feed.find(f"{ATOM}title").text == (
        "Commitment changes: Acme AI · Usage Policy · Never sell user data")
    assert feed.find(f"{ATOM}id").text != parse_feed(
        client, "/sources/acme-policy/feed.atom").find(f"{ATOM}id").text
    assert change_ids(client.get("/?source=acme-policy&commitment=pause").text) == [
        history.removed]
    assert client.get("/api/changes?commitment=pause").json()["changes"][0]["id"] == (
        history.removed)
    source_page = client.get("/sources/acme-policy").text
    assert "/sources/acme-policy/commitments/no-data-sale/feed.atom" in source_page
    assert "/?source=acme-policy&amp;commitment=no-data-sale" in source_page


def test_an_unchanged_feed_answers_a_conditional_get_with_304(client: TestClient,
                                                             sqlite_engine: Engine) -> None:
    first = client.get("/feed.atom")
    etag = first.headers["etag"]
    again = client.get("/feed.atom", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    with store.session(sqlite_engine) as s:
        s.add(Change(source_id="acme-policy", key="s:new", status="added", reason="new",
                     after="We will publish model cards.", url=URL, detected_at=T1))
        s.commit()
    changed = client.get("/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_atom_ids_stay_the_same_when_served_from_another_host(sqlite_engine: Engine,
                                                              history: History) -> None:
    app = create_app(sqlite_engine, WATCHLIST)
    ids = []
    for base in ("http://testserver", "https://monitor.example.org"):
        with TestClient(app, base_url=base) as client:
            feed = etree.fromstring(client.get("/feed.atom").content)
        ids.append([e.text for e in feed.iterfind(f"{ATOM}entry/{ATOM}id")])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 4


# --- JSON API ------------------------------------------------------------------------------------


def test_api_changes_are_the_changes_json_objects(client: TestClient, sqlite_engine: Engine,
                                                  history: History) -> None:
    body = client.get("/api/changes?source=acme-policy&status=weakened").json()
    with store.session(sqlite_engine) as s:
        expected = store.change_json(s.get(Change, history.weakened))
    assert body == {"changes": [expected], "next": None}
    assert expected["detected_at"] == "2026-02-24T10:12:00Z"
    assert client.get(f"/api/changes/{history.weakened}").json() == expected


def test_api_changes_page_with_a_next_link(client: TestClient, history: History) -> None:
    first = client.get("/api/changes?limit=2").json()
    assert [c["id"] for c in first["changes"]] == [history.scripted, history.removed]
    second = client.get(first["next"]).json()
    assert [c["id"] for c in second["changes"]] == [history.weakened, history.globex_added]
    assert second["next"] is None


def test_api_errors_are_json(client: TestClient) -> None:
    response = client.get("/api/changes/999")
    assert response.status_code == 404
    assert response.json() == {"error": "there is no change #999"}


def test_api_sources_reports_health(client: TestClient) -> None:
    sources = client.get("/api/sources").json()["sources"]
    assert [(s["id"], s["health"]) for s in sources] == [
        ("globex-framework", "failing"), ("initech-principles", "never checked"),
        ("acme-policy", "ok")]
    assert sources[0]["failing_streak"] == 4
    assert sources[0]["failing_since"] == "2026-02-23T16:12:00Z"
    assert sources[2]["changes"] == 3


# --- untrusted page text and browser-side safety -------------------------------------------------


def test_script_in_page_text_is_escaped_in_html_atom_and_json(client: TestClient,
                                                             history: History) -> None:
    for path in ("/", f"/changes/{history.scripted}", "/sources/acme-policy"):
        page = client.get(path).text
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page  # the site itself needs no script at all
    feed = etree.fromstring(client.get("/feed.atom").content)
    assert not any(element.tag.endswith("script") for element in feed.iter())
    content = feed.find(f"{ATOM}entry/{ATOM}content").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; We will never track you." in content
    assert SCRIPT not in content
    body = client.get(f"/api/changes/{history.scripted}")
    assert body.headers["content-type"] == "application/json"
    assert body.json()["before"] == f"{SCRIPT} We will never track you."


def test_every_response_carries_a_strict_content_security_policy(client: TestClient,
                                                                 history: History) -> None:
    for path in ("/", "/sources", f"/changes/{history.weakened}", "/feed.atom",
                 "/api/sources", "/changes/999", "/static/style.css"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'self'"), path
        assert "script-src" not in policy and "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_stylesheet_is_served_from_the_package(client: TestClient) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "ins {" in response.text


# --- the same queries on PostgreSQL --------------------------------------------------------------


def test_filters_paging_and_health_agree_on_every_database(engine: Engine) -> None:
    history = record_history(engine)
    with TestClient(create_app(engine, WATCHLIST)) as client:
        first = client.get("/api/changes?company=Acme%20AI&limit=2").json()
        assert [c["id"] for c in first["changes"]] == [history.scripted, history.removed]
        assert [c["id"] for c in client.get(first["next"]).json()["changes"]] == [
            history.weakened]
        assert change_ids(client.get("/?status=added").text) == [history.globex_added]
        assert [s["id"] for s in client.get("/api/sources").json()["sources"]][0] == (
            "globex-framework")
        assert client.get(f"/snapshots/{history.new_sha}").content == V2_HTML


# --- what the real pipeline records --------------------------------------------------------------


def test_a_hedged_commitment_found_by_a_real_check_reads_as_evidence(
        site: Site, sqlite_engine: Engine) -> None:
    watched = check_v1_then_v2(site, sqlite_engine)
    with TestClient(create_app(sqlite_engine, watched)) as client:
        timeline = soup(client.get("/").text)
        assert [e.get_text() for e in timeline.select(".status")] == ["removed", "weakened"]
        permalink = timeline.find("a", string="Quarterly safety report")["href"]
        page = client.get(permalink)
        evidence = soup(page.text)
        assert [e.get_text() for e in evidence.select(".evidence .before del")] == ["will"]
        assert [e.get_text() for e in evidence.select(".evidence .after ins")] == ["may"]
        assert evidence.select(".evidence .after blockquote")[0].get_text() == (
            "We may publish a safety report every quarter.")
        new_sha = store.sha256(POLICY_V2.format(stamp="24 February").encode())
        assert client.get(f"/snapshots/{new_sha}").text == POLICY_V2.format(stamp="24 February")
        assert f"/snapshots/{new_sha}" in page.text
        feed = etree.fromstring(client.get("/feed.atom").content)
        assert_valid_atom(feed, "http://testserver/feed.atom")
        source = soup(client.get("/sources/acme-policy").text)
        assert source.select("table.commitments .status")[0].get_text() == "weakened"
        assert [row.select("td")[1].get_text() for row in source.select("table.checks tbody tr")
                ] == ["changed", "baseline"]


def test_serve_answers_on_loopback_and_shows_watchlist_edits_without_restart(
        tmp_path: Path, sqlite_url: str) -> None:
    watchlist_file = tmp_path / "watchlist.yaml"
    watchlist_file.write_text(WATCHLIST_YAML, encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api/sources"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--watchlist", str(watchlist_file), "--database",
         sqlite_url, "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        first = _poll_json(api, process)["sources"]
        edited = WATCHLIST_YAML.replace("id: initech-principles", "id: initech-charter")
        rewrite(watchlist_file, edited)
        second = httpx.get(api, timeout=5).json()["sources"]
        rewrite(watchlist_file, edited.replace("company: Globex", "company: [Globex"))
        third = httpx.get(api, timeout=5).json()["sources"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert [s["id"] for s in first] == ["acme-policy", "globex-framework", "initech-principles"]
    assert [s["id"] for s in second] == ["acme-policy", "globex-framework", "initech-charter"]
    assert third == second  # a broken edit keeps the last good watchlist
    assert f"serving http://127.0.0.1:{port}/" in stderr
    assert "watchlist edit rejected" in stderr and f"{watchlist_file}:" in stderr


def _poll_json(url: str, process: subprocess.Popen[str], timeout: float = 20) -> Any:
    """GET url as soon as the server answers; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        try:
            return httpx.get(url, timeout=2).json()
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout} s")
