"""Alert wording: subjects, evidence in both bodies, escaping of untrusted page text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor import render
from monitor.store import Alert, Change
from monitor.watchlist import Source

T_OLD = datetime(2025, 5, 14, 8, 0, tzinfo=UTC)
T_NEW = datetime(2026, 2, 24, 10, 12, tzinfo=UTC)
SOURCE = Source(id="openai-usage", company="OpenAI", title="Usage Policies",
                url="https://openai.example/policies/usage")


def change(status: str = "weakened", *, title: str | None = "No military use",
           before: str | None = "We will never allow military use.",
           after: str | None = "We may allow military use in some cases.",
           diff: list[list[str]] | None = None, **kw: object) -> Change:
    fields: dict[str, object] = dict(
        source_id=SOURCE.id, key="no-military", commitment_id="no-military" if title else None,
        commitment_title=title, status=status, reason='modal downgrade: "will" -> "may"',
        before=before, after=after,
        diff=json.dumps(diff if diff is not None else [
            ["=", "We"], ["-", "will never"], ["+", "may"], ["=", "allow military use"],
            ["+", "in some cases."]]),
        section_before="Universal policies › Weapons", section_after="Universal policies › Weapons",
        old_snapshot="9c1e" + "0" * 60, new_snapshot="3f2a" + "1" * 60,
        old_fetched_at=T_OLD, new_fetched_at=T_NEW, url=SOURCE.url)
    fields.update(kw)
    return Change(**fields)  # type: ignore[arg-type]


def alert_for(changes: list[Change]) -> Alert:
    return Alert(source_id=SOURCE.id, kind="changes",
                 subject=render.changes_subject(changes, SOURCE), created_at=T_NEW)


def test_subject_names_status_company_document_and_commitment() -> None:
    assert render.changes_subject([change("removed", after=None)], SOURCE) == \
        "[REMOVED] OpenAI · Usage Policies · No military use"


def test_subject_leads_with_the_most_severe_of_several_changes_and_counts_the_rest() -> None:
    changes = [change("reworded", title="Board oversight"), change("removed", after=None),
               change("weakened", title="Pause")]
    assert render.changes_subject(changes, SOURCE) == \
        "[REMOVED] OpenAI · Usage Policies · No military use (+2 more)"


def test_subject_for_a_discovered_sentence_abbreviates_it_on_one_line() -> None:
    long = "We shall\nnot release a model " + "that has dangerous capabilities " * 5
    subject = render.changes_subject([change("added", title=None, before=None, after=long)],
                                     SOURCE)
    assert subject.startswith("[ADDED] OpenAI · Usage Policies · We shall not release a model")
    assert subject.endswith("…") and "\n" not in subject
    assert len(subject.split(" · ")[-1]) == render.SUBJECT_SENTENCE_CHARS


def test_both_bodies_carry_before_after_evidence_and_why() -> None:
    changes = [change()]
    message = render.render_changes(alert_for(changes), changes, SOURCE)
    for body in (message.text, message.html):
        assert "We will never allow military use." in body
        assert "We may allow military use in some cases." in body
        assert "snapshot 9c1e00000000" in body and "snapshot 3f2a11111111" in body
        assert "fetched 2025-05-14 08:00 UTC" in body and "fetched 2026-02-24 10:12 UTC" in body
        assert "Universal policies › Weapons" in body
        assert SOURCE.url in body
    assert 'why: modal downgrade: "will" -> "may"' in message.text
    assert message.subject == "[WEAKENED] OpenAI · Usage Policies · No military use"


def test_each_change_links_its_permalink_when_the_web_view_address_is_known() -> None:
    changes = [change(id=7)]
    linked = render.render_changes(alert_for(changes), changes, SOURCE,
                                   web_url="https://monitor.example.org")
    assert "  permalink: https://monitor.example.org/changes/7" in linked.text
    assert '<a href="https://monitor.example.org/changes/7">' in linked.html
    plain = render.render_changes(alert_for(changes), changes, SOURCE)
    assert "permalink" not in plain.text + plain.html


def test_changed_words_are_marked_in_text_and_html() -> None:
    changes = [change()]
    message = render.render_changes(alert_for(changes), changes, SOURCE)
    assert "changed: We [-will never-] {+may+} allow military use {+in some cases.+}" in \
        message.text
    assert "<del>will never</del>" in message.html and "<ins>may</ins>" in message.html


def test_page_text_is_escaped_in_html() -> None:
    hostile = 'We will <script>alert("x")</script> & <b>not</b> comply.'
    changes = [change("removed", before=hostile, after=None, diff=[["-", hostile]],
                      reason="sentence removed <img src=x>")]
    message = render.render_changes(alert_for(changes), changes, SOURCE)
    assert "<script>" not in message.html and "<b>not</b>" not in message.html
    assert "&lt;script&gt;" in message.html and "&amp;" in message.html
    assert "<img" not in message.html
    assert hostile in message.text  # plain text stays verbatim


def test_not_found_reads_as_two_words() -> None:
    assert render.changes_subject([change("not_found", before=None, after=None)], SOURCE) == \
        "[NOT FOUND] OpenAI · Usage Policies · No military use"


def test_several_changes_are_listed_most_severe_first() -> None:
    changes = [change("reworded", id=1), change("removed", after=None, id=2)]
    text = render.render_changes(alert_for(changes), changes, SOURCE).text
    assert text.index("[REMOVED]") < text.index("[REWORDED]")


def rewrite(count: int, words: int = 12) -> list[Change]:
    """A rewritten policy: ``count`` changed sentences of ``words`` words, a few removed."""
    sentence = " ".join(["commitment"] * words)
    return [change("removed" if i % 10 == 0 else "reworded", id=i, title=f"Sentence {i}",
                   before=f"We will keep {sentence} {i}.", after=f"We keep {sentence} {i}.")
            for i in range(count)]


def test_a_rewritten_policy_fits_one_slack_message_most_severe_in_full_the_rest_listed() -> None:
    changes = rewrite(116)  # OpenAI's usage policies, January 2024
    message = render.render_changes(alert_for(changes), changes, SOURCE)

    for body in (message.text, message.html):
        assert len(body) < 35_000  # apprise's Slack body limit; it does not cut longer ones
        assert "116 changes: 12 removed, 104 reworded." in body
        assert "96 more, one line each" in body
        assert "[REWORDED] Sentence 115" in body  # every change is at least named
        assert "commitment-monitor changes --source openai-usage" in body
    assert message.text.count("  why: ") == render.FULL_CHANGES
    assert "[REMOVED] Sentence 110\n  before" in message.text  # every removal in full


def test_long_sentences_show_fewer_changes_in_full() -> None:
    changes = rewrite(12, words=400)  # each change quotes two sentences of ~4,800 characters
    text = render.render_changes(alert_for(changes), changes, SOURCE).text
    assert 1 <= text.count("  why: ") < 12 and "more, one line each" in text
    assert len(text) < render.FULL_CHARS + 15_000


def test_beyond_the_brief_list_the_rest_are_counted() -> None:
    changes = rewrite(render.FULL_CHANGES + render.BRIEF_CHANGES + 7)
    text = render.render_changes(alert_for(changes), changes, SOURCE).text
    assert "... and 7 more" in text


def test_health_message_says_the_kind_and_escapes_the_error() -> None:
    alert = Alert(source_id=SOURCE.id, kind="health_failing", created_at=T_NEW,
                  subject=render.health_subject("health_failing", SOURCE, "http_status"),
                  detail="3 checks in a row failed. Last error: http_status: 503 <html>")
    message = render.render_health(alert, SOURCE)
    assert message.subject == "[FAILING] OpenAI · Usage Policies · http_status"
    assert "http_status: 503 <html>" in message.text
    assert "503 &lt;html&gt;" in message.html
    assert SOURCE.url in message.text and SOURCE.url in message.html
