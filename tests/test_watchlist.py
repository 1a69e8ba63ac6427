"""The watchlist loader: every class of mistake is reported with its line, all in one run."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from monitor import watchlist
from monitor.errors import WatchlistError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "watchlist.example.yaml"
EXAMPLE_ENV = {"SMTP_USER": "u", "SMTP_PASSWORD": "p", "SLACK_TOKENS": "T/B/C"}

GOOD = """\
defaults:
  every: 6h
  notify: [team]
channels:
  team:
    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org
sources:
  - id: lab-policy
    company: Lab
    title: Usage Policy
    url: https://example.org/policy
    commitments:
      - id: no-weapons
        title: No weapons
        quote: we will not help build weapons
"""


TEAM = "  team:\n    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org\n"
NEWSROOM = """\
  team:
    urls:
      - mailto://127.0.0.1:2525?from=a@example.org&to=news@example.org
    only: [weakened, removed]
"""
"""A channel that wants only some alerts: its URLs under 'urls', what it wants under 'only'."""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The problems parse() reports, as printed; fails the test when the text is valid."""
    with pytest.raises(WatchlistError) as caught:
        watchlist.parse(dedent(text), environ=environ or {})
    return [str(problem) for problem in caught.value.problems]


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_a_valid_watchlist_resolves_defaults_into_frozen_objects() -> None:
    loaded = watchlist.parse(GOOD, environ={})
    source = loaded.source("lab-policy")
    assert loaded.interval(source) == timedelta(hours=6)
    assert loaded.channels_for(source) == ("team",)
    assert source.commitments[0].quote == "we will not help build weapons"
    with pytest.raises(ValueError, match="frozen"):
        source.url = "https://example.org/other"  # type: ignore[misc]


def test_a_channel_may_ask_for_every_status_the_engine_reports_and_every_health_alert() -> None:
    from typing import get_args

    from monitor.detect import SEVERITY
    from monitor.notify import HEALTH_KINDS

    assert set(get_args(watchlist.AlertKind)) == {*SEVERITY, *HEALTH_KINDS.values()}


def test_the_web_address_is_kept_without_its_trailing_slash() -> None:
    text = replace("  every: 6h\n", "  every: 6h\n  web_url: https://monitor.example.org/\n")
    assert watchlist.parse(text, environ={}).defaults.web_url == "https://monitor.example.org"


def test_a_channel_may_want_only_some_alerts_and_a_plain_list_wants_all() -> None:
    wanting = watchlist.parse(replace(TEAM, NEWSROOM), environ={}).channels["team"]
    everything = watchlist.parse(GOOD, environ={}).channels["team"]
    assert wanting.urls == ("mailto://127.0.0.1:2525?from=a@example.org&to=news@example.org",)
    assert wanting.wants({"weakened", "added"}) and not wanting.wants({"added", "failing"})
    assert everything.only is None and everything.wants({"failing"})
    daily = watchlist.parse(replace(TEAM, NEWSROOM.replace("only: [weakened, removed]",
                                                           "digest: '08:30'")), environ={})
    held = daily.channels["team"].send_at(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    assert held == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert everything.send_at(held) == held


def test_the_documented_example_watchlist_is_valid() -> None:
    loaded = watchlist.load(EXAMPLE, environ=EXAMPLE_ENV)
    assert [source.id for source in loaded.sources] == [
        "anthropic-rsp", "openai-preparedness", "example-js-policy"]
    assert loaded.interval(loaded.source("openai-preparedness")) == timedelta(days=1)
    assert loaded.source("example-js-policy").fetch == "browser"


@pytest.mark.parametrize(("text", "line", "words"), [
    pytest.param(replace("    title: Usage Policy\n", "    title: Usage Policy\n    titel: x\n"),
                 11, ["unknown key 'titel'", "did you mean 'title'?"], id="unknown-key"),
    pytest.param(replace("  every: 6h\n", "  every: 6h\n  colour: red\n"),
                 3, ["defaults: unknown key 'colour'", "allowed here: every"],
                 id="unknown-key-in-defaults"),
    pytest.param(replace("      - id: no-weapons\n",
                         "      - id: no-weapons\n        note: x\n"),
                 14, ["commitment 'no-weapons': unknown key 'note'"],
                 id="unknown-key-in-commitment"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: ftp://example.org/policy\n"),
                 11, ["source 'lab-policy' url: bad URL", "http:// or https://"], id="bad-url"),
    pytest.param(replace("  every: 6h\n", "  every: 6h\n  web_url: monitor.example.org\n"),
                 3, ["defaults.web_url: bad URL 'monitor.example.org'", "https://"],
                 id="web-address-without-scheme"),
    pytest.param(replace("  every: 6h\n", "  every: 6 hours\n"),
                 2, ["defaults.every: bad duration '6 hours'", "e.g. 30m, 6h"],
                 id="bad-duration"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    every: 0m\n"),
                 12, ["every: duration '0m' must be positive"], id="zero-duration"),
    pytest.param(replace("  notify: [team]\n", "  notify: [team, tem]\n"),
                 3, ["unknown channel 'tem'", "defined: team"], id="unknown-channel"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    select: 'main >'\n"),
                 12, ["invalid CSS selector 'main >'", "fix the selector"], id="bad-selector"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    drop: [nav, 'div[']\n"),
                 12, ["invalid CSS selector 'div['"], id="bad-drop-selector"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    select: 'p::before'\n"),
                 12, ["invalid CSS selector 'p::before'", "not supported"],
                 id="selector-the-normaliser-cannot-read"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    follow: 'svg|a'\n"),
                 12, ["invalid CSS selector 'svg|a'", "namespace"],
                 id="selector-that-fails-only-when-run"),
    pytest.param(replace("    url: https://example.org/policy\n",
                         "    url: https://example.org/policy\n    discover: maybe\n"),
                 12, ["discover: Input should be a valid boolean", "write true or false"],
                 id="wrong-type-bool"),
    pytest.param(replace("  notify: [team]\n", "  notify: team\n"),
                 3, ["defaults.notify:", "write a list"], id="wrong-type-list"),
    pytest.param(replace("    company: Lab\n", ""),
                 8, ["source 'lab-policy': missing required key 'company'; add it"],
                 id="missing-key"),
    pytest.param(replace("        quote: we will not help build weapons\n", "        quote: hm\n"),
                 15, ["quote: String should have at least 8 characters"], id="short-quote"),
    pytest.param(replace("  - id: lab-policy\n", "  - id: Lab Policy\n"),
                 8, ["'Lab Policy' is not a valid id", "lower-case"], id="bad-id"),
    pytest.param(replace("    company: Lab\n", "    company: Lab\n    company: Lab Inc\n"),
                 10, ["duplicate key 'company'; keep only one"], id="duplicate-yaml-key"),
    pytest.param(replace("    company: Lab\n", "    company: [Lab\n"),
                 10, ["YAML syntax error", "check indentation"], id="yaml-syntax"),
    pytest.param(GOOD + "  - just a name\n",
                 16, ["source #2: expected 'key: value' lines here, not text 'just a name'"],
                 id="source-not-a-mapping"),
    pytest.param(replace("    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org\n",
                         "    - slak://T1/B2/C3\n"),
                 6, ["channel 'team' URL #1 has scheme 'slak', which apprise does not know"],
                 id="unknown-apprise-scheme"),
    pytest.param(replace("  team:\n    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org\n",
                         "  team: []\n"),
                 5, ["channel 'team' has no URLs"], id="empty-channel"),
    pytest.param(replace(TEAM, NEWSROOM.replace("[weakened, removed]", "[weakened, removd]")),
                 8, ["channels.team.only[1]: Input should be", "'removed'"],
                 id="unknown-status-a-channel-wants"),
    pytest.param(replace(TEAM, NEWSROOM.replace("    only:", "    onyl:")),
                 8, ["channels.team: unknown key 'onyl'", "did you mean 'only'?",
                     "allowed here: urls, only"], id="unknown-key-in-channel"),
    pytest.param(replace(TEAM, NEWSROOM.replace("?from=", "?user=${NEWS_USER}&from=")),
                 7, ["channel 'team' uses ${NEWS_USER}, which is not set"],
                 id="unset-variable-under-urls"),
    pytest.param(replace(TEAM, NEWSROOM.replace("only: [weakened, removed]", "digest: 9:30")),
                 8, ["channels.team.digest: 570 is not a time of day; quote it"],
                 id="digest-time-read-by-yaml-as-a-number"),
    pytest.param(replace(TEAM, NEWSROOM.replace("only: [weakened, removed]", "digest: '25:00'")),
                 8, ["bad time of day '25:00'", "HH:MM in UTC"], id="digest-time-out-of-range"),
    pytest.param(replace(TEAM, "  team:\n    only: [weakened]\n"),
                 5, ["channels.team: missing required key 'urls'"], id="channel-without-urls"),
    pytest.param(replace(TEAM, "  team:\n    - 42\n"),
                 6, ["channels.team[0]: Input should be a valid string"],
                 id="url-not-text-in-a-plain-list"),
    pytest.param(GOOD.replace("sources:\n", "sources: &all\n") + "  - *all\n",
                 7, ["an anchor contains an alias of itself"], id="recursive-alias"),
    pytest.param(GOOD + "path: elsewhere.yaml\n",
                 16, ["unknown key 'path'"], id="loader-field-is-not-a-key"),
])
def test_each_class_of_mistake_is_reported_with_its_line(text: str, line: int,
                                                         words: list[str]) -> None:
    found = problems(text)
    located = [p for p in found if p.startswith(f"watchlist.yaml:{line}: ")]
    assert located, f"nothing reported at line {line}: {found}"
    assert any(all(word in p for word in words) for p in located), found


def test_duplicate_ids_are_reported_at_the_second_occurrence() -> None:
    text = GOOD + (
        "  - id: lab-policy\n"
        "    company: Lab\n"
        "    title: Again\n"
        "    url: https://example.org/again\n"
        "    commitments:\n"
        "      - {id: a, title: A, quote: we will always do a}\n"
        "      - {id: a, title: B, quote: we will always do b}\n")
    found = problems(text)
    assert ("watchlist.yaml:16: duplicate source id 'lab-policy' (first at line 8); ids must be "
            "unique") in found
    assert any(p.startswith("watchlist.yaml:22: duplicate commitment id 'a'") for p in found)


def test_undefined_variable_is_named_but_a_defined_value_never_printed() -> None:
    text = replace("    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org\n",
                   "    - mailtos://${SMTP_USER}:${SMTP_PASSWORD}@mail.example.org\n"
                   "    - slak://${SMTP_PASSWORD}@x\n")
    found = problems(text, environ={"SMTP_USER": "hunter2-user"})
    assert any(p.startswith("watchlist.yaml:6: channel 'team' uses ${SMTP_PASSWORD}, which is "
                            "not set; export SMTP_PASSWORD") for p in found)
    assert not any("SMTP_USER" in p for p in found)
    assert "hunter2" not in "\n".join(found)


def test_literal_credentials_in_a_bad_url_are_not_echoed() -> None:
    found = problems(replace("    - mailto://127.0.0.1:2525?from=a@example.org&to=b@example.org\n",
                             "    - smpt://alice:s3cret-pass@mail.example.org\n"))
    assert any("scheme 'smpt'" in p for p in found)
    assert "s3cret" not in "\n".join(found)


def test_schema_and_reference_problems_are_listed_together_in_line_order() -> None:
    """One run lists everything: reference checks do not wait for the schema to pass."""
    text = replace("  notify: [team]\n", "  notify: [nobody]\n")
    text = text.replace("    url: https://example.org/policy\n", "    url: nowhere\n")
    text += "  - id: lab-policy\n    company: Lab\n    title: T\n    url: https://example.org\n"
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["3", "11", "16"], found


def test_merge_keys_let_sources_share_settings_and_explicit_keys_win() -> None:
    text = dedent("""\
        sources:
          - &lab
            id: one
            company: Lab
            title: One
            url: https://example.org/one
          - <<: *lab
            id: two
            url: https://example.org/two
    """)
    loaded = watchlist.parse(text, environ={})
    assert [(s.id, s.company, s.title, s.url) for s in loaded.sources] == [
        ("one", "Lab", "One", "https://example.org/one"),
        ("two", "Lab", "One", "https://example.org/two")]


def test_unreadable_and_empty_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match="cannot read the file .*MONITOR_WATCHLIST"):
        watchlist.load(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(WatchlistError, match=r"empty.yaml:1: the file is empty"):
        watchlist.load(empty)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00sources")
    with pytest.raises(WatchlistError, match="not UTF-8"):
        watchlist.load(binary)


def test_problems_name_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(replace("  every: 6h\n", "  every: soon\n"))
    with pytest.raises(WatchlistError) as caught:
        watchlist.load(path)
    assert str(caught.value.problems[0]).startswith(f"{path}:2: defaults.every: bad duration")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600),
                                               ("1.5d", 129600), ("2w", 1209600), (45, 45)])
def test_durations(text: str | int, seconds: int) -> None:
    assert watchlist.parse_duration(text) == timedelta(seconds=seconds)


def test_default_path_prefers_the_environment_then_config_then_seeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_WATCHLIST", raising=False)
    assert watchlist.default_path() == watchlist.BUNDLED_WATCHLIST
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "watchlist.yaml").write_text(GOOD)
    assert watchlist.default_path() == Path("config/watchlist.yaml")
    monkeypatch.setenv("MONITOR_WATCHLIST", "/srv/other.yaml")
    assert watchlist.default_path() == Path("/srv/other.yaml")


def test_expand_vars_reads_the_environment_only_when_asked() -> None:
    assert watchlist.expand_vars("slack://${TOKENS}/#x", {"TOKENS": "a/b/c"}) == "slack://a/b/c/#x"
    with pytest.raises(KeyError):
        watchlist.expand_vars("slack://${MISSING}/#x", {})


def test_the_readme_watchlist_example_is_valid() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Watchlist\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = watchlist.parse(example, name="README.md", environ=EXAMPLE_ENV)
    assert loaded.source("anthropic-rsp").commitments[0].id == "pause-if-unsafe"


def test_every_scheme_checked_without_apprise_is_one_apprise_knows() -> None:
    from apprise import NotificationManager

    assert not watchlist.COMMON_SCHEMES - set(NotificationManager().schemas())


def test_a_watchlist_of_common_schemes_loads_without_importing_apprise(tmp_path: Path) -> None:
    """Loading apprise's plugins costs 0.3-0.5 s on every command, a quiet check included."""
    path = tmp_path / "watchlist.yaml"
    path.write_text(GOOD)
    code = ("import sys; from monitor import cli, watchlist; watchlist.load(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'apprise'))")
    loaded = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, check=True).stdout
    assert loaded.strip() == "[]"
