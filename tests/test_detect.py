"""Unit tests of the engine's parts: the splitter, the alignment, the signals, the contract."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from monitor.detect import arrived, detect, relocated, sentence_key
from monitor.detect.collapse import collapse_reason
from monitor.detect.judge import judge, word_diff
from monitor.detect.locate import Located, align, is_commitment
from monitor.detect.sentences import (
    Memo,
    canonical,
    is_date_stamp,
    split,
    split_sentences,
    tracked_texts,
)


@dataclass(frozen=True)
class Commitment:
    id: str
    title: str
    quote: str


# --- splitting -------------------------------------------------------------------------------


@pytest.mark.parametrize("paragraph, expected", [
    ("We will act, e.g. by pausing. Then we report.", ["We will act, e.g. by pausing.",
                                                     "Then we report."]),
    ("Anthropic, PBC and the U.S. Government agree. We comply.",
     ["Anthropic, PBC and the U.S. Government agree.", "We comply."]),
    ("See Sec. 3 and No. 5 of the Act. We will comply.",
     ["See Sec. 3 and No. 5 of the Act.", "We will comply."]),
    ("The answer is no. We will not.", ["The answer is no.", "We will not."]),
    ("Example Inc. will comply. Mr. J. Smith signs.", ["Example Inc. will comply.",
                                                       "Mr. J. Smith signs."]),
    ("He said \"we will stop.\" Then he left.", ["He said \"we will stop.\"", "Then he left."]),
    ("1. We will publish reports. 2. We will share them.",
     ["1. We will publish reports.", "2. We will share them."]),
    ("Rates of 3.5 percent apply (i.e. yearly).", ["Rates of 3.5 percent apply (i.e. yearly)."]),
    ("Limits apply per § 4.2. Other rules follow.", ["Limits apply per § 4.2.",
                                                    "Other rules follow."]),
])
def test_sentences_split_at_real_boundaries_only(paragraph: str, expected: list[str]) -> None:
    assert split_sentences(paragraph) == expected


@pytest.mark.parametrize("paragraph", ["? Yes, we will publish it.", "!? Hello. We will stop."])
def test_a_line_starting_with_bare_punctuation_is_split_not_crashed_on(paragraph: str) -> None:
    # A PDF bullet can come out as "?": splitting it once raised IndexError, so the source's
    # every check failed as an internal error.
    assert "".join(split_sentences(paragraph)).replace(" ", "") == paragraph.replace(" ", "")
    assert detect(None, f"# Policy\n{paragraph}", [], discover=True).collapsed is None


def test_units_carry_section_path_and_list_lead_in() -> None:
    units = split("# Policy\n## Uses\nWe don't allow the following:\n- Weapons\n  - Military use\n"
                  "| Tier | Action |\n|---|---|\n| High | Do not release |\n### Other\nText.")
    assert [(u.text, u.kind, u.path) for u in units] == [
        ("We don't allow the following:", "sentence", "Policy › Uses"),
        ("Weapons", "item", "Policy › Uses"),
        ("Military use", "item", "Policy › Uses"),
        ("Tier | Action", "row", "Policy › Uses"),
        ("High | Do not release", "row", "Policy › Uses"),
        ("Text.", "sentence", "Policy › Uses › Other"),
    ]
    assert units[2].lead == "We don't allow the following: Weapons"


def test_canonical_folds_quotes_dashes_case_numbering_and_contractions() -> None:
    assert canonical("1.2 We won’t — ever — sell “data”.") == canonical("We will not - ever - "
                                                                         'sell "DATA"')
    assert sentence_key("(a) We will not sell data.") == sentence_key("we won't sell data")
    assert sentence_key("We will sell data.") != sentence_key("We will not sell data.")


@pytest.mark.parametrize("line", ["Last updated: March 3, 2025", "Effective date: 2025-03-03",
                                  "Updated March 23, 2023", "Last modified: 14 March 2023"])
def test_date_stamp_lines_are_recognised(line: str) -> None:
    assert is_date_stamp(line)


def test_a_commitment_with_a_date_is_not_a_date_stamp() -> None:
    assert not is_date_stamp("We will delete legacy data by March 3, 2025.")


# --- locating --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("We will publish a report.", True), ("You may not use the service to spam.", True),
    ("Don't share output to defraud others.", True), ("OpenAI prohibits illegal use.", True),
    ("Our models are trained on public data.", False), ("Read our blog for news.", False),
])
def test_commitment_language(text: str, expected: bool) -> None:
    assert is_commitment(split(text)[0]) is expected


def test_list_item_is_a_commitment_through_its_lead_in() -> None:
    units = split("We don't allow the use of our models for the following:\n- Military and warfare")
    assert is_commitment(units[1])
    assert not is_commitment(split("Our products:\n- Military and warfare")[1])


def test_abridged_quote_is_found_across_sentences() -> None:
    document = Located(split("Intro. We will delay AI development. Until then we wait. End."))
    span = document.find_exact("we will delay ... until then")
    assert span is not None and list(span.indices()) == [1, 2]


def test_quote_with_small_edits_is_found_fuzzily_but_not_an_unrelated_one() -> None:
    document = Located(split("We may take steps to stop or prevent that event. We like cats."))
    assert document.find_exact("we would take steps to stop or prevent that event") is None
    assert document.find("we would take steps to stop or prevent that event") is not None
    assert document.find("we will delete model weights after training") is None


def test_quote_that_is_part_of_a_longer_sentence_is_found_despite_an_edit() -> None:
    document = Located(split("If a model is found unsafe after release, we would delete its model "
                             "weights within a week and report to the board."))
    assert document.find("we will delete its model weights within a week") is not None
    assert document.find("we will publish the model weights") is None


def test_alignment_pairs_reordered_and_edited_sentences_one_to_one() -> None:
    old = split("We will publish reports.\nWe will never sell data.\nWe may review logs.")
    new = split("We will never sell data.\nWe may review logs daily.\nWe will publish reports.")
    assert align(old, new).pairs == {0: 2, 1: 0, 2: 1}


def test_alignment_recognises_a_sentence_recut_across_lines() -> None:
    old = split("We will not train models unless safeguards are in place.")
    new = split("We will not train models\nunless safeguards are in place.")
    alignment = align(old, new)
    assert alignment.reflowed_old == {0} and alignment.reflowed_new == {0, 1}


# --- judging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("before, after, status, reason", [
    ("We would take steps.", "We may take steps.", "weakened", 'modal downgrade: "would" -> "may"'),
    ("Systems must have safeguards.", "Systems should have safeguards.", "weakened",
     '"must" -> "should"'),
    ("We will delay deployment.", "We will consider delaying deployment.", "weakened",
     'hedge added: "consider"'),
    ("We will not sell data.", "We will sell data.", "weakened", "negation dropped"),
    ("We never sell data.", "We sell data.", "weakened", "negation dropped"),
    ("We will stop training.", "We will stop training unless a competitor ships first.",
     "weakened", "new exception or condition"),
    ("Google won't be responsible for lost profits.", "Except as stated above, Google won't "
     "be responsible for lost profits.", "strengthened", "new exception or condition"),
    ("We will report within 30 days.", "We will report within 90 days.", "weakened",
     'number relaxed: "30 days" -> "90 days"'),
    ("We will report within 90 days.", "We will report within thirty days.", "strengthened",
     "number tightened"),
    ("We audit all models.", "We audit some models.", "weakened",
     'scope narrowed: "all" -> "some"'),
    ("These are commitments.", "These are goals.", "weakened", "binding -> aspirational"),
    ("Do not facilitate or depict child abuse.", "Do not facilitate child abuse.", "weakened",
     'listed item removed: "or depict"'),
    ("We will review it yearly.", "We will update it yearly.", "strengthened", "verb upgrade"),
    ("At a minimum, we will run an external review.", "We will run an external review.",
     "weakened", 'qualifier dropped: "at a minimum"'),
    ("We may share data.", "We will not share data.", "strengthened", "negation added"),
    ("Limit: 50% of queries.", "Limit: 60% of queries.", "reworded", "direction unclear"),
    ("We will stop selling it by 1 March 2026.", "We will stop selling it by 1 March 2027.",
     "weakened", 'deadline moved later: "1 march 2026" -> "1 march 2027"'),
    ("We will publish our findings.", "We will publish our results.", "reworded",
     'wording changed: "findings." -> "results."'),
])
def test_judge_signals(before: str, after: str, status: str, reason: str) -> None:
    verdict = judge(before, after)
    assert verdict is not None
    assert verdict[0] == status and reason in verdict[1], verdict


@pytest.mark.parametrize("before, after", [
    ("We will comply with Section 3.2.", "We will comply with Section 4.2."),
    ("These terms will take effect on 5 January 2022.",
     "These terms will take effect on 22 May 2024."),
    ("We won’t sell “data”.", "We will not sell \"data\"."),
])
def test_cosmetic_edits_get_no_verdict(before: str, after: str) -> None:
    assert judge(before, after) is None


def test_word_diff_marks_changed_words_in_original_wording() -> None:
    assert word_diff("We would take steps.", "We may take steps.") == (
        ("=", "We"), ("-", "would"), ("+", "may"), ("=", "take steps."))


# --- collapse and contract -------------------------------------------------------------------


def test_collapse_reasons() -> None:
    big = "We will publish a report every quarter. " * 100
    assert collapse_reason(big, big) is None
    assert "empty" in (collapse_reason(big, "  ") or "")
    assert "challenge" in (collapse_reason(big, "Just a moment...\nVerify you are human") or "")
    assert "shrank" in (collapse_reason(big, big[:1000]) or "")
    assert "stub" in (collapse_reason(big, "Moved.") or "")
    assert collapse_reason(None, "Just a moment...") is not None


def test_a_policy_mentioning_access_denied_is_not_a_collapse() -> None:
    text = "We will log every access denied event for audit. " * 80
    assert collapse_reason(text, text + " We will keep logs.") is None


def test_collapsed_text_yields_no_findings_even_with_configured_quotes() -> None:
    old = "We will never sell your data. " * 100
    detection = detect(old, "Access denied", [Commitment("c", "t", "we will never sell")],
                       discover=True)
    assert detection.findings == () and detection.collapsed


def test_finding_evidence_for_a_discovered_weakening() -> None:
    old = "# Terms\n## Data\nWe will not train on your chats."
    new = "# Terms\n## Data\nWe will train on your chats."
    (finding,) = detect(old, new, [], discover=True).findings
    assert finding.key == sentence_key("We will not train on your chats.")
    assert finding.commitment_id is None
    assert (finding.before, finding.after) == ("We will not train on your chats.",
                                               "We will train on your chats.")
    assert finding.section_before == finding.section_after == "Terms › Data"
    assert ("-", "not") in finding.diff


def test_configured_quote_removed_uses_the_commitment_id_as_key() -> None:
    old = "We will pause training if safeguards lag. We publish reports."
    (finding,) = detect(old, "We publish reports.", [Commitment("pause", "Pause", "we will pause "
                                                                "training if safeguards lag")]
                        ).findings
    assert (finding.status, finding.key, finding.commitment_title) == ("removed", "pause", "Pause")
    assert finding.after is None and finding.before == "We will pause training if safeguards lag."


def test_a_removed_sentence_another_document_holds_is_moved_there_not_removed() -> None:
    old = "We will pause training if safeguards lag. We will publish reports."
    findings = detect(old, "We will publish reports.", [], discover=True).findings
    documents = {"Acme · Compliance Framework": "# Duties\nThese duties moved here. We will "
                                                "pause training if our safeguards lag."}

    [moved] = relocated(findings, documents)
    [kept] = relocated(findings, {"Acme · Blog": "We will publish reports."})

    assert (moved.status, moved.before) == ("moved", "We will pause training if safeguards lag.")
    assert moved.reason == ("moved to another document: Acme · Compliance Framework (no longer "
                            "in this one)")
    assert kept.status == "removed"


LOST = "We will pause training if safeguards lag, and we will tell the board within a week."


@pytest.mark.parametrize("added, status, reason", [
    (LOST, "moved",
     "moved here from another document: Acme · Policy, removed 2026-03-01 08:00 UTC"),
    (LOST.replace("the board", "our board"), "moved",
     "moved here from another document: Acme · Policy, removed 2026-03-01 08:00 UTC"),
    (LOST.replace("we will tell", "we may tell"), "weakened",
     "moved here from another document (Acme · Policy, removed 2026-03-01 08:00 UTC), and "
     'weakened: modal downgrade: "will" -> "may"'),
    ("We will publish our evaluations every quarter.", "added", "new commitment sentence"),
])
def test_an_added_sentence_another_document_lost_reads_as_moved_here(added: str, status: str,
                                                                     reason: str) -> None:
    findings = detect("# Duties\nThese duties moved here.", f"# Duties\nThese duties moved "
                      f"here. {added}", [], discover=True).findings
    removed = {LOST: "Acme · Policy, removed 2026-03-01 08:00 UTC"}

    [finding] = arrived(findings, removed)

    assert (finding.status, finding.reason, finding.after, finding.before) == (
        status, reason, added, None)
    assert arrived(findings, {}) == list(findings)


def test_configured_quote_is_not_reported_twice_under_discover() -> None:
    old = "We would take steps to stop that event."
    new = "We may take steps to stop that event."
    findings = detect(old, new, [Commitment("c", "t", "take steps to stop that event")],
                      discover=True).findings
    assert [f.key for f in findings] == ["c"]


def test_restored_matches_a_key_from_removed_before() -> None:
    detection = detect("Intro.", "Intro. We will never sell data.", [], discover=True,
                       removed_before=[sentence_key("We will never sell data.")])
    assert [f.status for f in detection.findings] == ["restored"]


def test_baseline_reports_only_missing_quotes_with_the_closest_text() -> None:
    new = "We will publish a risk report every 3-6 months."
    detection = detect(None, new, [Commitment("r", "Reports", "we will publish a safety case for "
                                              "each model"),
                                   Commitment("ok", "Ok", "publish a risk report")], discover=True)
    (finding,) = detection.findings
    assert finding.status == "not_found" and finding.key == "r"
    assert "closest" in finding.reason


@pytest.mark.parametrize("removed_before", [["pause"],
                                            ["We will pause training if safeguards lag."]])
def test_configured_quote_back_is_restored_by_id_or_by_its_removed_sentence(
        removed_before: list[str]) -> None:
    commitment = Commitment("pause", "Pause", "we will pause training if safeguards lag")
    (finding,) = detect("We publish reports.", "We publish reports. We will pause training if "
                        "safeguards lag.", [commitment], removed_before=removed_before).findings
    assert (finding.status, finding.key) == ("restored", "pause")


# --- the fast paths read a text as the plain ones do -----------------------------------------


SAMPLE = """# Policy
## Uses
Last updated: March 3, 2025
We don't allow the following: see No. 5 of the Act. Example Inc. will comply, e.g. by pausing.
- Weapons. Military use
  - Surveillance
| Tier | Action |
|---|---|
| High | Do not release |
Nous n’autorisons pas l’usage militaire. We organise the centre's behaviour reviews.
"""


def test_tracked_texts_are_the_texts_and_canonical_forms_of_the_units_split_tracks() -> None:
    units = [u for u in split(SAMPLE) if not is_date_stamp(u.text)]
    assert tracked_texts(SAMPLE) == ([u.text for u in units], [u.canon for u in units])
    assert split(SAMPLE, stamps=False) == units


def test_units_of_an_ascii_paragraph_have_the_canonical_form_of_the_unicode_path() -> None:
    units = split("1. We organise reviews. (B) The Centre cancelled it, e.g. twice. II. Behaviour "
                  "counts! Sec. 4 applies.")
    assert [u.canon for u in units] == ["we organize reviews", "the center canceled it e g twice",
                                        "behavior counts", "sec 4 applies"]
    # a no-break space makes the text non-ASCII: canonical() then takes its general path
    assert all(u.canon == canonical(u.text + "\u00a0") for u in units)


def _policy(paragraphs: int) -> str:
    return "\n".join(f"## Part {k}\nWe will review model {k} e.g. weekly, see No. 5 of the Act. "
                     f"Our team will report finding {k} to the board. Reports go out quarterly."
                     for k in range(paragraphs))


def _cut_after_first_sentence(text: str) -> str:
    return "\n".join(line.replace(" Our team", "\nOur team") for line in text.splitlines())


@pytest.mark.parametrize("first, second", [
    (_policy(8), _policy(8).replace("finding 3", "findings 3").replace("quarterly", "yearly", 1)),
    (_policy(8), _cut_after_first_sentence(_policy(8))),
    (_policy(8), _policy(8).replace("e.g. weekly, ", "e.g.\nweekly, ")),   # not a sentence end
    (_cut_after_first_sentence(_policy(8)), _policy(8)),
])
def test_a_version_split_with_the_other_versions_memo_gets_its_own_units(first: str,
                                                                          second: str) -> None:
    memo = Memo()
    split(first, memo)
    units = split(second, memo)
    assert units == split(second)
    assert [u.canon for u in units] == [u.canon for u in split(second)]


def test_a_reflowed_version_reuses_the_sentences_of_the_other() -> None:
    memo = Memo()
    split(_policy(8), memo)
    reflowed = _cut_after_first_sentence(_policy(8))
    assert split(reflowed, memo) == split(reflowed)
    assert memo.starts is not None          # the known sentences were looked up


@pytest.mark.parametrize("before, after, status, reason", [
    ("We back up data daily.", "We back up data weekly.", "weakened",
     'number relaxed: "daily" -> "weekly"'),
    ("Audits run biannually.", "Audits run annually.", "weakened", "number relaxed"),
    ("Write to privacy@example.com to opt out.", "Write to legal@example.org to opt out.",
     None, ""),
    ("We will delete logs within a week.", "We will delete logs within a year.", "weakened",
     'number relaxed: "a week" -> "a year"'),
])
def test_judge_reads_cadences_durations_and_addresses_without_digits(
        before: str, after: str, status: str | None, reason: str) -> None:
    verdict = judge(before, after)
    assert (verdict and verdict[0]) == status and reason in (verdict[1] if verdict else "")
