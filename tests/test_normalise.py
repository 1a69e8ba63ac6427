"""Normalisation: golden HTML cases, noise stability, PDFs made with reportlab, corpus pages."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS

from monitor.detect.sentences import split
from monitor.errors import NormaliseError
from monitor.fetch import FetchResult
from monitor.normalise import NORMALISER_VERSION, Document, html, normalise, pdf
from monitor.watchlist import Source

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def source(**overrides: object) -> Source:
    fields = {"id": "s", "company": "Acme", "title": "Policy", "url": "https://example.org/p"}
    return Source(**{**fields, **overrides})  # type: ignore[arg-type]


def result(body: bytes | str, media_type: str = "text/html", **fields: object) -> FetchResult:
    data = body.encode() if isinstance(body, str) else body
    return FetchResult(url="https://example.org/p", status=200, body=data, media_type=media_type,
                       fetched_at=NOW, elapsed_ms=1, **fields)  # type: ignore[arg-type]


def text_of(html: str, **source_fields: object) -> str:
    return normalise(result(html), source(**source_fields)).text


# --- HTML golden cases -------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Acme  Policy</title>
<style>.x{color:red}</style><script>var nonce="abc";</script></head><body>
<header class="site"><a href="/">Acme</a> <a href="/login">Log in</a></header>
<nav><ul><li><a href="/a">About</a></li><li><a href="/b">Blog</a></li></ul></nav>
<div id="cookie-banner">We use cookies. <button>Accept</button></div>
<main>
  <article>
    <header><h1>Responsible  Scaling
      Policy</h1></header>
    <p class="lead">We   <strong>will not</strong> deploy models
       unless <a href="/safeguards?utm_source=x&amp;tok=123">the required safeguards</a>
       are in place.</p>
    <h2>Commitments</h2>
    <ol>
      <li>Pause training<ul><li>when evaluations fail</li></ul></li>
      <li><p>Publish results.</p></li>
    </ol>
    <table><thead><tr><th>Level</th><th>Action</th></tr></thead>
      <tbody><tr><td>ASL-3</td><td>Harden  security</td></tr></tbody></table>
    <p>Last updated: 3 days ago</p>
  </article>
</main>
<aside>Related posts</aside>
<footer>&copy; 2026 Acme</footer>
</body></html>"""

EXPECTED = """# Responsible Scaling Policy
We will not deploy models unless the required safeguards are in place.
## Commitments
- Pause training
  - when evaluations fail
- Publish results.
| Level | Action |
| ASL-3 | Harden security |"""


def test_page_chrome_is_dropped_and_blocks_become_lines() -> None:
    assert text_of(PAGE) == EXPECTED


def test_title_comes_from_the_title_element() -> None:
    assert normalise(result(PAGE), source()).title == "Acme Policy"


def test_select_takes_only_the_selected_region() -> None:
    assert text_of(PAGE, select="main table") == "| Level | Action |\n| ASL-3 | Harden security |"


def test_drop_removes_matches_inside_the_selection() -> None:
    text = text_of(PAGE, select="article", drop=["table", "h2"])
    assert "Level" not in text and "Commitments" not in text
    assert text.startswith("# Responsible Scaling Policy\nWe will not deploy models")


def test_select_keeps_what_chrome_removal_would_drop() -> None:
    html = "<body><nav>Menu</nav><div class='policy'><footer>Signed, Acme</footer></div></body>"
    assert text_of(html, select=".policy") == "Signed, Acme"


def test_selector_matching_nothing_is_a_selector_empty_error_naming_url_and_selector() -> None:
    with pytest.raises(NormaliseError) as caught:
        text_of(PAGE, select="#policy-body")
    assert caught.value.kind == "selector_empty"
    assert "https://example.org/p" in str(caught.value) and "#policy-body" in str(caught.value)


def test_a_page_without_text_is_an_empty_error_not_an_empty_document() -> None:
    with pytest.raises(NormaliseError) as caught:
        text_of("<html><body><script>render()</script><div id=root></div></body></html>")
    assert caught.value.kind == "empty"


def test_inline_elements_stay_inside_their_sentence() -> None:
    html = ("<p>We <em>commit</em> to <a href='/x'>publish</a> <span class=a>model"
            "</span><span>cards</span> within <b>30</b>&nbsp;days.</p>")
    assert text_of(html) == "We commit to publish modelcards within 30 days."


def test_br_splits_a_paragraph_into_lines() -> None:
    assert text_of("<p>Acme Inc.<br>1 Main St.</p>") == "Acme Inc.\n1 Main St."


def test_typed_list_numbers_and_bullets_are_stripped_so_renumbering_is_invisible() -> None:
    before = "<ol><li>1. Pause training.</li><li>2. Publish results.</li></ol>"
    after = "<ol><li>(a) Pause training.</li><li>(b) Publish results.</li></ol>"
    bullets = "<ul><li>\u2022 Pause training.</li><li>\u2022 Publish results.</li></ul>"
    assert text_of(before) == text_of(after) == text_of(bullets) == \
        "- Pause training.\n- Publish results."


def test_list_item_with_paragraphs_is_one_line() -> None:
    html = "<ul><li><p><strong>Safety.</strong></p><p>We test models.</p></li></ul>"
    assert text_of(html) == "- Safety. We test models."


@pytest.mark.parametrize("stamp", [
    "Updated 3 days ago", "Last updated: 2 hours ago", "last modified about a month ago",
    "Posted yesterday", "5 minutes ago",
])
def test_relative_date_stamps_are_removed(stamp: str) -> None:
    assert text_of(f"<p>{stamp}</p><p>We will not train on your data.</p>") == \
        "We will not train on your data."


def test_relative_dates_inside_a_sentence_are_text() -> None:
    sentence = "We delete chats created more than 30 days ago unless you saved them."
    assert text_of(f"<p>{sentence}</p>") == sentence
    assert text_of("<p>Updated 2 days ago · We will not sell data.</p>") == \
        "We will not sell data."


def test_day_first_and_month_first_dates_read_the_same() -> None:
    assert text_of("<p>Effective 15 September 2025.</p>") == \
        text_of("<p>Effective September 15, 2025.</p>") == "Effective September 15, 2025."


def test_absolute_dates_are_kept() -> None:
    assert text_of("<p>Last updated: January 5, 2026</p>") == "Last updated: January 5, 2026"


def test_quotes_dashes_and_invisible_characters_are_folded() -> None:
    html = ("<p>\u201cWe won\u2019t\u201d \u2014 ever \u2013 use a net\u2011zero "
            "\u2212 path\u200b for\u00a0you\u00ad\u202e.</p>")
    assert text_of(html) == "\"We won't\" - ever - use a net-zero - path for you."


def test_hidden_and_screen_reader_text_is_dropped() -> None:
    html = ("<p>We will not<span class='sr-only'> (opens in a new tab)</span> sell data."
            "<span aria-hidden='true'>\u2197</span></p><div hidden>draft text</div>")
    assert text_of(html) == "We will not sell data."


def test_skip_links_are_chrome() -> None:
    html = "<a href='#main' class='btn'>Skip to main content</a><p>We will not sell data.</p>"
    assert text_of(html) == "We will not sell data."


def test_widgets_such_as_language_pickers_and_menus_are_chrome() -> None:
    html = ("<main><p>We will not sell data.</p></main><div><ul role='listbox'>"
            "<li role='option'>English</li><li role='option'>Deutsch</li></ul>"
            "<div role='menu'><a>Settings</a></div><div role='toolbar'>Share</div></div>")
    assert text_of(html) == "We will not sell data."


def test_collapsed_until_found_sections_are_content() -> None:
    assert text_of("<div hidden='until-found'><p>We will not sell data.</p></div>") == \
        "We will not sell data."


def test_nested_matches_of_select_are_read_once() -> None:
    html = ("<div class='p'><p>One.</p><div class='p'><p>Two.</p></div></div>"
            "<div class='p'>One.</div>")
    assert text_of(html, select=".p") == "One.\nTwo.\nOne."


def test_layout_table_cells_are_read_as_blocks() -> None:
    html = ("<table><tr><td><h1>Policy</h1><p>We will not sell data.</p></td>"
            "<td><table><tr><td>a</td><td>b</td></tr></table></td></tr></table>")
    assert text_of(html) == "# Policy\nWe will not sell data.\n| a | b |"


def test_cloudflare_obfuscated_email_reads_as_the_address() -> None:
    obfuscated = ('<p>Email: <a href="/cdn-cgi/l/email-protection#f2818782829d8086b28adc939b">'
                  '<span class="__cf_email__" data-cfemail="2655535656495452665e08474f">'
                  '[email&#160;protected]</span></a></p>')
    assert text_of(obfuscated) == text_of("<p>Email: <a>support@x.ai</a></p>") == \
        "Email: support@x.ai"


def test_forms_keep_their_text_but_lose_their_controls() -> None:
    html = ("<form><p>We will notify you.</p><input value='x'><button>Submit</button>"
            "<select><option>English</option></select></form>")
    assert text_of(html) == "We will notify you."


NOISY = """<!DOCTYPE html>
<html lang="en-GB" data-build="9f8e7d"><head><title>Acme Policy</title>
<script nonce="Zm9vYmFy">window.__STATE__={"session":"77a1"}</script>
<style nonce="Zm9vYmFy">.c-81x{margin:0}</style><link rel="preload" href="/f.woff2?v=2"></head>
<body class="theme-dark  js">
  <!-- rendered by edge-42 -->
  <header class="site-header-v2"><a href="/?ref=nav">Acme</a></header>
  <nav class="n-3"><ul><li><a href="/a?sid=999">About</a></li></ul></nav>
  <div id="cookie-banner" class="cb-77">Cookies? <button>OK</button></div>
<main class="m-9a"><article data-id="abc-123">
<header class="h-x"><h1 class="t1">Responsible Scaling Policy</h1></header>
<p class="lead-2"  data-track="p1">We <strong class="s">will not</strong>
deploy models unless
<a href="/safeguards?utm_source=mail&amp;tok=987654" rel="noopener">the required safeguards</a> are
in place.</p>
<h2 id="c-2">Commitments</h2>
<ol start="5" class="o">
  <li class="i">Pause training
    <ul><li>when evaluations fail</li></ul>
  </li>
  <li class="i"><p>Publish results.</p></li>
</ol>
<table class="tbl-new"><thead><tr><th scope="col">Level</th><th>Action</th></tr></thead>
<tbody><tr data-row="1"><td>ASL-3</td><td>Harden security</td></tr></tbody></table>
<p class="stamp">Last updated: 5 hours ago</p>
<script>track("view", {"t": 1767225600})</script>
</article></main>
<aside class="rel">Other posts</aside>
<footer class="f-3">&copy; 2026 Acme &middot; <a href="/privacy?x=1">Privacy</a></footer>
</body></html>"""


def test_same_page_with_noise_variants_normalises_identically() -> None:
    assert text_of(NOISY) == text_of(PAGE) == EXPECTED


def test_declared_charset_is_used_to_decode() -> None:
    body = "<p>Les donn\u00e9es ne seront pas vendues.</p>".encode("latin-1")
    doc = normalise(result(body, charset="iso-8859-1"), source())
    assert doc.text == "Les donn\u00e9es ne seront pas vendues."


def test_invalid_bytes_do_not_crash_normalisation() -> None:
    doc = normalise(result(b"<p>We will \xff\xfe not sell data.</p>", charset="utf-8"), source())
    assert doc.text.startswith("We will") and doc.text.endswith("not sell data.")


def test_unknown_declared_charset_falls_back_to_detection() -> None:
    doc = normalise(result(b"<p>We will not.</p>", charset="no-such-codec"), source())
    assert doc.text == "We will not."


def test_deeply_nested_markup_is_read_or_refused_with_a_clear_error() -> None:
    assert text_of("<div>" * 800 + "We will not." + "</div>" * 800) == "We will not."
    with pytest.raises(NormaliseError) as caught:
        text_of("<span>" * 5000 + "We will not." + "</span>" * 5000)
    assert caught.value.kind == "too_deep"


def test_plain_text_paragraphs_are_joined_and_lists_kept() -> None:
    body = "# Policy\n\nWe will not\nsell data.\n\n1. Pause training\n2. Publish results\n"
    doc = normalise(result(body, "text/plain"), source())
    assert doc.text == "# Policy\nWe will not sell data.\n- Pause training\n- Publish results"


def test_unsupported_media_type_is_a_clear_error() -> None:
    with pytest.raises(NormaliseError) as caught:
        normalise(result(b"\x89PNG", "image/png"), source())
    assert caught.value.kind == "unsupported_type" and "image/png" in str(caught.value)


def test_normaliser_version_is_a_positive_int() -> None:
    assert isinstance(NORMALISER_VERSION, int) and NORMALISER_VERSION >= 1


# --- corpus ------------------------------------------------------------------------------------


def corpus_files(pattern: str) -> list[Path]:
    files = sorted(CORPUS.glob(pattern))
    if not files:
        pytest.skip(f"corpus not found at {CORPUS} ({pattern}); tests reading real pages need it")
    return files


def test_corpus_usage_policy_keeps_its_commitments_as_list_items() -> None:
    page = corpus_files("openai/usage-policies/2025-09-29T*.html")[0]
    text = normalise(result(page.read_bytes()), source()).text
    assert "# Usage policies" in text.splitlines()
    assert "  - real money gambling" in text.splitlines()
    assert "cookie" not in text.lower().split("changelog")[0][:200]


def test_corpus_refetches_of_an_unchanged_page_give_identical_text() -> None:
    """Two fetches of Anthropic's privacy policy 12 hours apart differ only in rotating URLs."""
    first, second = corpus_files("anthropic/privacy-policy/2025-12-04T*.html")[:2]
    assert first.read_bytes() != second.read_bytes()
    assert normalise(result(first.read_bytes()), source()).text == \
        normalise(result(second.read_bytes()), source()).text


# --- PDF ---------------------------------------------------------------------------------------

FRAMEWORK = [
    ["Capability thresholds",
     "We will not train or deploy models that reach a capability threshold unless we have "
     "implemented the required safeguards and verified their effectiveness independently.",
     "Thresholds are reviewed annually by the responsible scaling officer, who publishes a "
     "summary of the findings and recommendations within ninety days."],
    ["Safeguards",
     "\u2022 We will harden security against theft of model weights by sophisticated attackers.",
     "\u2022 We will restrict deployment to vetted customers during the evaluation period."],
    ["Governance",
     "The board receives every evaluation report and may pause development at any time "
     "if the safeguards are found wanting by the internal or external assessors."],
]
FRAMEWORK_TEXT = """Capability thresholds
We will not train or deploy models that reach a capability threshold unless we have \
implemented the required safeguards and verified their effectiveness independently.
Thresholds are reviewed annually by the responsible scaling officer, who publishes a summary \
of the findings and recommendations within ninety days.
Safeguards
- We will harden security against theft of model weights by sophisticated attackers.
- We will restrict deployment to vetted customers during the evaluation period.
Governance
The board receives every evaluation report and may pause development at any time if the \
safeguards are found wanting by the internal or external assessors."""


def pdf_text(body: bytes) -> Document:
    return normalise(result(body, "application/pdf"), source())


def typeset(flowables: list[object]) -> bytes:
    """A PDF laid out by reportlab's platypus: its lists and heading styles, as real tools set
    them (make_pdf draws lines of one size by hand)."""
    import io

    from reportlab.platypus import SimpleDocTemplate

    buffer = io.BytesIO()
    SimpleDocTemplate(buffer).build(flowables)
    return buffer.getvalue()


def test_pdf_headers_footers_page_numbers_dropped_and_hyphens_repaired(pdf_factory) -> None:
    body = pdf_factory(FRAMEWORK)
    doc = pdf_text(body)
    assert doc.text == FRAMEWORK_TEXT
    assert doc.title == "Frontier Safety Framework"


def test_pdf_re_exported_gives_the_same_text(pdf_factory) -> None:
    again = pdf_factory(FRAMEWORK, header="ACME \u2014 FSF v2.1", footer="{page}",
                        producer="Other Writer 9", compress=False, width=64)
    assert again != pdf_factory(FRAMEWORK)
    assert pdf_text(again).text == FRAMEWORK_TEXT


def test_pdfs_read_in_several_threads_never_enter_pdfium_at_once(pdf_factory,
                                                                 monkeypatch) -> None:
    """PDFium is not thread-safe (concurrent calls crash or corrupt the process), and the
    checks of a watchlist normalise in a thread pool."""
    body = pdf_factory(FRAMEWORK)
    inside, most = [0], [0]
    read_page = pdf._pdfium_lines

    def slow_page(textpage):  # type: ignore[no-untyped-def]
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.02)  # lets the other threads run, as pdfium's C calls do
        inside[0] -= 1
        return read_page(textpage)

    monkeypatch.setattr(pdf, "_pdfium_lines", slow_page)
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(lambda _: pdf_text(body).text, range(4)))
    assert texts == [FRAMEWORK_TEXT] * 4
    assert most[0] == 1


def test_a_pdf_pdfium_rejects_is_read_by_pypdf_with_its_sentences_whole(pdf_factory) -> None:
    """2 KB before the header (a server prepending whitespace): pdfium refuses the file, pypdf
    reads it. Without line geometry the headings join the next sentence; every sentence stays
    whole, hyphenation repaired, running headers and page numbers gone."""
    doc = pdf_text(b"\n" * 2048 + pdf_factory(FRAMEWORK))
    sentences = [line.removeprefix("- ") for line in FRAMEWORK_TEXT.splitlines()
                 if line.endswith(".")]
    assert len(sentences) == 5 and all(sentence in doc.text for sentence in sentences)
    assert doc.title == "Frontier Safety Framework"
    assert "Acme Corp" not in doc.text and "Page 2" not in doc.text


def test_a_bulleted_list_reads_the_same_through_pypdf_as_through_pdfium() -> None:
    """pypdf reads reportlab's bullet as U+007F on a line of its own; those lines must still
    make list items, not paragraphs strewn with control characters. The paragraph after the
    list is set no further apart than the items: it is not part of the last item, because it
    starts where the bullets stand, left of the items' own lines. (An OpenAI-style list of
    prohibited uses: an item is a commitment only through its lead-in.)"""
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import ListFlowable, ListItem, Paragraph

    normal = getSampleStyleSheet()["Normal"]
    body = typeset([
        Paragraph("We do not allow the use of our models for the following:", normal),
        ListFlowable([ListItem(Paragraph(item, normal)) for item in
                      ("Military and warfare, " * 6 + "and war.", "Weapons development.")],
                     bulletType="bullet"),
        Paragraph("We will review this policy every 12 months.", normal)])
    expected = ("We do not allow the use of our models for the following:\n"
                "- " + "Military and warfare, " * 6 + "and war.\n- Weapons development.\n"
                "We will review this policy every 12 months.")
    assert pdf_text(body).text == expected                    # pdfium
    assert pdf_text(b"\n" * 2048 + body).text == expected     # pdfium rejects it


def test_pdf_headings_are_told_by_their_type_and_ranked_by_size() -> None:
    """A larger size, or bold at the text's size, marks a heading; a bold sentence, a line that
    only starts in bold, and a long bold paragraph stay text. A heading wrapped over three lines
    is one heading. The section path of every sentence in an alert comes from these."""
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph

    styles = getSampleStyleSheet()
    body = styles["Normal"].clone("Body", spaceBefore=8)   # paragraphs set apart by a gap
    long_title = ("Frontier Safety Framework: how we decide when a model is too capable to deploy "
                  "without new safeguards")
    emphasised = "This whole paragraph is set in bold type and runs over several lines. " * 3
    text = "Each evaluation covers biological, cyber and autonomy risks in turn. " * 12
    document = pdf_text(typeset([
        Paragraph(long_title, styles["Heading1"]),
        Paragraph("1. Capability thresholds", styles["Heading2"]),
        Paragraph("We will evaluate every frontier model before release.", body),
        Paragraph(text, body),                  # most of the text: its style is the body's
        Paragraph("<b>When do we pause?</b>", body),
        Paragraph("We will pause training when a threshold is crossed.", body),
        Paragraph("<b>We will never sell your data.</b>", body),
        Paragraph("<b>Note:</b> the board reviews the results each quarter.", body),
        Paragraph(f"<b>{emphasised}</b>", body),
        Paragraph("2. Governance in the U.S.", styles["Heading2"])]))
    assert document.text.splitlines() == [
        f"# {long_title}", "## 1. Capability thresholds",
        "We will evaluate every frontier model before release.", text.strip(),
        "### When do we pause?",
        "We will pause training when a threshold is crossed.", "We will never sell your data.",
        "Note: the board reviews the results each quarter.", emphasised.strip(),
        "## 2. Governance in the U.S."]
    [unit] = [unit for unit in split(document.text) if unit.text.startswith("We will pause")]
    assert unit.path == f"{long_title} › 1. Capability thresholds › When do we pause?"


def test_a_sentence_is_cited_by_the_pdf_page_on_which_it_begins(pdf_factory) -> None:
    """For citing a PDF by page: a sentence that runs on past a page break (and its running
    header and page number) belongs to the page where it starts; pypdf's reading agrees."""
    pages = [*FRAMEWORK[:2], ["The board receives every evaluation report and"],
             ["may pause development at any time."]]
    body = pdf_factory(pages)
    text = pdf_text(body).text
    assert "The board receives every evaluation report and may pause development at any time." \
        in text.splitlines()
    for reading in (body, b"\n" * 2048 + body):
        assert [pdf.page_of(reading, sentence) for sentence in (
            "Capability thresholds", FRAMEWORK[1][2].removeprefix("\u2022 "),
            "The board receives every evaluation report and may pause development at any time.",
            "We will never sell your data.")] == [1, 2, 3, None]
    assert pdf.page_of(b"not a pdf", "Capability thresholds") is None


def test_encrypted_pdf_is_a_pdf_encrypted_error(pdf_factory) -> None:
    with pytest.raises(NormaliseError) as caught:
        pdf_text(pdf_factory(FRAMEWORK, password="s3cret"))
    assert caught.value.kind == "pdf_encrypted"


def test_pdf_without_any_text_is_image_only_not_an_empty_document(pdf_factory) -> None:
    with pytest.raises(NormaliseError) as caught:
        pdf_text(pdf_factory([[], []]))
    assert caught.value.kind == "pdf_image_only"


def test_unparsable_pdf_is_pdf_corrupt(pdf_factory) -> None:
    body = pdf_factory(FRAMEWORK)
    with pytest.raises(NormaliseError) as caught:
        pdf_text(body[:200] + b"\x00garbage" * 50)
    assert caught.value.kind == "pdf_corrupt"


def test_real_pdf_from_the_corpus_reads_in_order_with_its_headings() -> None:
    """OpenAI's PDF sets its headings in the text's size, in bold; its effective date is in
    italics, which pdfium reports as heavier than the bold."""
    page = corpus_files("openai/law-enforcement-policy/*.pdf")[0]
    lines = pdf_text(page.read_bytes()).text.splitlines()
    assert lines[0] == "# OPENAI GOVERNMENT USER DATA REQUEST POLICY"
    assert any(line.startswith("Before disclosing user data to law enforcement") for line in lines)
    assert not any(line.isdigit() for line in lines)
    headings = [line for line in lines if line.startswith("#")]
    assert headings[1:4] == ["# I. SERVICE OF PROCESS", "# II. REQUESTS TO OPENAI US",
                             "# A. Requests from Government Agencies in the U.S."]
    assert len(headings) == 14 and "# VII. REIMBURSEMENT" in headings
    assert lines[lines.index("# II. REQUESTS TO OPENAI US") + 4].startswith("- take the form of")


def test_corpus_locale_flapping_dates_normalise_identically() -> None:
    """Anthropic's usage policy rendered 'September 15, 2025', then '15 September 2025'."""
    pages = corpus_files("anthropic/usage-policy/2026-04-2*.html")
    texts = {normalise(result(page.read_bytes()), source()).text for page in pages}
    assert len(pages) == 2 and len(texts) == 1


def test_sentences_in_adjacent_spans_styled_as_blocks_stay_apart():
    body = (b"<main><div><span>Terms of Service.</span><span><span>Prohibited Uses.</span></span>"
            b"<span>We want everyone to be safe.</span> <b>E</b>xample.</div></main>")
    text, _ = html.extract(body, url="https://example.org/aup")
    assert text == "Terms of Service. Prohibited Uses. We want everyone to be safe. Example."


# --- the reading kept from NORMALISER_VERSION 1 (bs4) on lxml's tree ---------------------------


def test_text_either_side_of_a_removed_element_stays_two_strings():
    """The sentence-spacing rule sees the text before and after a removed script as two strings."""
    assert text_of("<p>Prohibited uses.<script>x()</script>We want safety.</p>") == \
        "Prohibited uses. We want safety."


def test_ruby_annotations_are_not_text_but_their_line_breaks_count():
    assert text_of("<p>\u6f22<rp>(</rp><rt>kan</rt><rp>)</rp>\u5b57</p>") == "\u6f22\u5b57"
    assert text_of("<p>A<rt>r<br>s</rt>B</p>") == "A\nB"


@pytest.mark.parametrize(("body", "charset", "expected"), [
    pytest.param("<meta charset='iso-8859-1'><p>Donn\u00e9es</p>".encode("latin-1"), None,
                 "Donn\u00e9es", id="meta-charset"),
    pytest.param("<meta charset='utf-8'><p>Donn\u00e9es</p>".encode("latin-1"), "iso-8859-1",
                 "Donn\u00e9es", id="http-charset-wins-over-meta"),
    pytest.param("<?xml version='1.0' encoding='iso-8859-1'?><p>Donn\u00e9es</p>"
                 .encode("latin-1"), None, "Donn\u00e9es", id="xml-declaration"),
    pytest.param("<p>Donn\u00e9es</p>".encode("utf-16"), None, "Donn\u00e9es", id="utf-16-bom"),
])
def test_encoding_is_chosen_in_the_same_order_as_before(body: bytes, charset: str | None,
                                                        expected: str) -> None:
    assert normalise(result(body, charset=charset), source()).text == expected


def test_content_after_the_closing_html_tag_can_be_selected():
    html = "<html><body><p>Intro.</p></body></html><main><p>We will not sell data.</p></main>"
    assert text_of(html, select="main") == "We will not sell data."


def test_a_page_nested_deeper_than_libxml2s_tree_still_reads_outside_the_deep_part():
    """libxml2's own tree stops at 2,048 levels; the page is then read from parse events."""
    deep = "<nav>" + "<div>" * 3000 + "menu" + "</div>" * 3000 + "</nav>"
    assert text_of(f"<html><body>{deep}<main><p>We will not sell data.</p></main></body></html>"
                   ) == "We will not sell data."


def test_a_garbled_cloudflare_address_keeps_its_characters():
    """XOR-decoding a damaged payload can give control characters, which lxml will not store."""
    assert text_of('<p>Mail <span data-cfemail="41402043">x</span> us.</p>') == "Mail \x01a\x02 us."


@pytest.mark.parametrize(("selector", "expected"), [
    pytest.param(".x", "One.", id="class-names-split-at-any-whitespace"),
    pytest.param("[type=TEXT]", "Two.", id="type-values-ignore-case"),
    pytest.param("p:contains('Three')", "Three.", id="contains-is-case-sensitive"),
    pytest.param("template p, main p:empty + p", "Four.", id="template-contents-are-not-the-page"),
])
def test_selectors_keep_the_meaning_they_had(selector: str, expected: str) -> None:
    html = ("<main><p class='a\u00a0x'>One.</p><p type='text'>Two.</p><p>three.</p>"
            "<p>Three.</p><template><p>Hidden.</p></template><p> </p><p>Four.</p></main>")
    assert text_of(html, select=selector) == expected
