"""The bundled watchlists in seeds/ must load on a fresh machine and be worth tracking."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS

from monitor import watchlist
from monitor.detect import detect
from monitor.fetch import FetchResult
from monitor.normalise import normalise

SEEDS = sorted((Path(__file__).resolve().parents[1] / "seeds").glob("*.yaml"))


def test_the_default_watchlist_is_the_bundled_ai_labs_seed() -> None:
    assert watchlist.BUNDLED_WATCHLIST in SEEDS


@pytest.fixture(params=SEEDS, ids=[p.name for p in SEEDS])
def seed(request: pytest.FixtureRequest) -> watchlist.Watchlist:
    # environ={} proves no channel needs an environment variable to validate.
    return watchlist.load(request.param, environ={})


def test_seed_validates_without_any_environment_variable(seed: watchlist.Watchlist) -> None:
    assert seed.sources


def test_seed_source_ids_are_unique(seed: watchlist.Watchlist) -> None:
    ids = [source.id for source in seed.sources]
    assert len(ids) == len(set(ids))


def test_every_seed_source_tracks_something(seed: watchlist.Watchlist) -> None:
    idle = [s.id for s in seed.sources if not s.commitments and not s.discover]
    assert idle == []


def test_every_seed_quote_is_a_real_sentence_not_a_placeholder(seed: watchlist.Watchlist) -> None:
    for source in seed.sources:
        for commitment in source.commitments:
            words = commitment.quote.replace("...", " ").split()
            assert len(words) >= 5, f"{source.id}/{commitment.id}: quote too short to locate"
            assert commitment.quote.strip(". ") != "", commitment.id
            assert "TODO" not in commitment.quote and "\n" not in commitment.quote


def test_seed_commitment_titles_are_unique_within_a_source(seed: watchlist.Watchlist) -> None:
    for source in seed.sources:
        titles = [c.title for c in source.commitments]
        assert len(titles) == len(set(titles)), source.id


def test_ai_labs_seed_covers_the_labs_and_the_rsp_story() -> None:
    seed = watchlist.load(watchlist.BUNDLED_WATCHLIST, environ={})
    companies = {s.company for s in seed.sources}
    assert {"Anthropic", "OpenAI", "Google DeepMind", "Google", "Meta", "Microsoft", "Amazon",
            "xAI"} <= companies
    rsp = {c.id for c in seed.source("anthropic-rsp").commitments}
    assert {"delay-while-in-lead", "competitor-condition", "roadmap-not-hard-commitments",
            "risk-report-external-review"} <= rsp
    aup = seed.source("anthropic-aup-exceptions").commitments
    assert any("domestic surveillance" in c.quote and "weapons" in c.quote for c in aup)
    assert seed.source("anthropic-rsp").follow, "the RSP PDF moves every version: follow the link"
    assert seed.defaults.notify == ()


def test_js_hosts_are_fetched_with_a_browser() -> None:
    seed = watchlist.load(watchlist.BUNDLED_WATCHLIST, environ={})
    for source in seed.sources:
        host = source.url.split("/")[2]
        if host in ("openai.com", "x.ai", "llama.developer.meta.com"):
            assert source.fetch == "browser", source.id


# Seed sources whose page the shared corpus holds (Open Terms Archive snapshots of the same URL).
IN_CORPUS = {
    "openai-usage": "openai/usage-policies",
    "anthropic-aup": "anthropic/usage-policy",
    "google-genai-pup": "google/generative-ai-prohibited-use-policy",
    "xai-aup": "xai/acceptable-use-policy",
    "meta-llama-aup": "meta/llama-api-acceptable-use-policy",
}


@pytest.mark.parametrize("source_id", sorted(IN_CORPUS))
def test_seed_selector_and_quotes_match_the_latest_real_snapshot(source_id: str) -> None:
    directory = CORPUS / IN_CORPUS[source_id]
    if not directory.is_dir():
        pytest.skip(f"the shared corpus is absent at {CORPUS}")
    source = watchlist.load(watchlist.BUNDLED_WATCHLIST, environ={}).source(source_id)
    latest = sorted(directory.glob("*.html"))[-1]
    result = FetchResult(url=source.url, status=200, body=latest.read_bytes(),
                         media_type="text/html", fetched_at=datetime.now(UTC), elapsed_ms=0,
                         charset="utf-8")

    text = normalise(result, source).text  # raises selector_empty if the selector is wrong
    missing = [f.commitment_id for f in detect(None, text, source.commitments).findings
               if f.status == "not_found"]

    assert missing == [], f"{latest.name}: quotes not found"
