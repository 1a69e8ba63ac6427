"""The benchmarks' own parts: the generated policy site, its server, and the two tools' inputs.

The figures come from bench/cycle.py and bench/soak.py; these tests only prove that what they
measure is what they say: pages rebuilt byte for byte, edits that are the substantive kind, real
304s, the same selection on both sides, and a process's memory, CPU and checks read right.
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from monitor import watchlist as watchlist_module

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import cycle  # noqa: E402
import policysite  # noqa: E402
import soak  # noqa: E402

from monitor import store  # noqa: E402


def test_pages_are_rebuilt_byte_for_byte_from_the_seed() -> None:
    page = policysite.plan(1, pdf_fraction=0.0, seed=7)[0]
    first = policysite.render(policysite.build(page, 7), 7)
    assert policysite.render(policysite.build(page, 7), 7) == first
    assert policysite.render(policysite.build(page, 8), 8) != first


def test_sizes_are_mixed_and_every_twentieth_page_is_a_pdf() -> None:
    pages = policysite.plan(400, pdf_fraction=0.05, seed=1)
    assert [p.index for p in pages if p.kind == "pdf"] == list(range(19, 400, 20))
    html = [p.size for p in pages if p.kind == "html"]
    assert min(html) >= 20_000 and max(html) <= 1_000_000
    assert sum(size > 400_000 for size in html) >= 5  # a few pages near 1 MB
    page = next(p for p in pages if p.kind == "html" and p.size > 400_000)
    assert abs(len(policysite.render(policysite.build(page, 1), 1)) - page.size) < page.size / 10


def test_an_edit_downgrades_one_modal_and_relaxes_one_number() -> None:
    page = policysite.plan(1, pdf_fraction=0.0, seed=3)[0]
    model = policysite.build(page, 3)
    words = changed_words(model, policysite.edit(model, random.Random(3)))
    assert ("will", "may") in words
    assert any(y.isdigit() and int(y) == 3 * int(x) for x, y in words)
    assert len(words) == 2


def test_every_page_can_be_edited_even_when_one_sentence_gets_both_changes() -> None:
    for page in policysite.plan(300, pdf_fraction=0.0, seed=1):
        model = policysite.build(page, 1)
        edited = policysite.edit(model, random.Random(f"1:edit:{page.index}"))
        assert len(changed_words(model, edited)) == 2


def changed_words(model: policysite.Model, edited: policysite.Model) -> list[tuple[str, str]]:
    return [(x, y) for a, b in zip(model.blocks, edited.blocks, strict=True)
            for x, y in zip(str(a.text).split(), str(b.text).split(), strict=True) if x != y]


def test_the_generated_watchlist_is_valid_and_matches_the_urlwatch_jobs(tmp_path: Path) -> None:
    pages = policysite.plan(20, pdf_fraction=0.05, seed=1)
    site = policysite.Site(tmp_path, pages, seed=1)
    site.port = 8999
    parsed = watchlist_module.parse(yaml.safe_dump(cycle.watchlist(site, smtp_port=2525)))
    assert len(parsed.sources) == 20
    html_source = parsed.sources[0]
    assert (html_source.select, html_source.drop) == ("main", ("aside", ".cookie-banner"))
    assert html_source.commitments[0].quote in policysite.render(
        policysite.build(pages[0], 1), 1).decode()
    jobs = list(yaml.safe_load_all(cycle.urlwatch_jobs(site)))
    assert jobs[0]["filter"] == [{"css": {"selector": "main", "exclude": "aside, .cookie-banner"}},
                                 "html2text"]
    assert jobs[19]["filter"] == ["pdf2text"]
    assert [job["url"] for job in jobs] == [source.url for source in parsed.sources]


@pytest.fixture
def served(tmp_path: Path):
    site = policysite.Site(tmp_path, policysite.plan(2, pdf_fraction=0.0, seed=1), seed=1)
    site.generate()
    site.reset()
    site.start()
    yield site
    site.stop()


def test_the_server_answers_304_until_a_page_is_edited(served: policysite.Site) -> None:
    first = {page: httpx.get(served.url(page)) for page in served.pages}
    assert all(r.status_code == 200 and b" may " not in r.content for r in first.values())
    etags = {page: response.headers["etag"] for page, response in first.items()}
    for page in served.pages:
        revalidated = httpx.get(served.url(page), headers={"If-None-Match": etags[page]})
        assert revalidated.status_code == 304
    (edited,) = served.edit(0.5, random.Random(0))
    (untouched,) = [page for page in served.pages if page != edited]
    after = httpx.get(served.url(edited), headers={"If-None-Match": etags[edited]})
    assert after.status_code == 200 and b" may " in after.content
    assert httpx.get(served.url(untouched),
                     headers={"If-None-Match": etags[untouched]}).status_code == 304
    served.undo_edits()
    restored = httpx.get(served.url(edited), headers={"If-None-Match": after.headers["etag"]})
    assert restored.status_code == 200 and restored.content == first[edited].content


def test_the_soak_reads_a_process_memory_cpu_and_stored_checks(tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    engine = store.make_engine(f"sqlite:///{database}")
    store.create_schema(engine)
    with store.session(engine) as s:
        for source in ("a", "b"):
            store.add_check(s, {"source_id": source, "started_at": store.utcnow(), "url": "u",
                                "outcome": "not_modified"})
        s.commit()
    engine.dispose()
    here = soak.sample(os.getpid(), database, at=1.0)
    assert here.checks == 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 10 < here.rss_mb <= peak_mb + 1
    assert 0 < here.cpu <= time.process_time() + 0.05
    assert soak.count_checks(tmp_path / "absent.db") == 0


def test_memory_growth_is_the_least_squares_slope_per_hour() -> None:
    samples = [soak.Sample(at=60.0 * minute, rss_mb=100 + minute * 0.5 + (minute % 2) * 0.2,
                           cpu=0, checks=0) for minute in range(10)]
    assert soak.growth_per_hour(samples) == pytest.approx(30, abs=1.5)
    assert math.isnan(soak.growth_per_hour(samples[:1]))  # one sample has no slope
