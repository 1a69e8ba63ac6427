"""The `commitment-monitor` commands: output, exit codes, and what they never print."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import Response, Site, Smtp
from sqlmodel import Session, select

from monitor import store
from monitor.cli import main

REPO = Path(__file__).resolve().parents[1]

V1 = """<html><body><nav>Home</nav><main><h1>Safety Policy</h1>
<p>We will not deploy models that fail our safety evaluations.</p>
<p>We will notify users within 30 days of any incident.</p>
</main><footer>(c) 2026</footer></body></html>"""
V2 = V1.replace("fail our safety evaluations.", "fail our safety evaluations, unless a "
                "competitor has already released a comparable model.")


def watchlist_text(site: Site, *, channel: str | None = None, sources: str = "lab",
                   extra: str = "") -> str:
    text = "defaults:\n  failures_before_alert: 2\n"
    if channel:
        text += f"  notify: [team]\nchannels:\n  team:\n    - {channel}\n"
    text += "sources:\n"
    for source_id in sources.split():
        text += (f"  - id: {source_id}\n    company: Lab\n    title: Safety Policy\n"
                 f"    url: {site.url('/' + source_id)}\n    select: main\n"
                 "    commitments:\n      - id: no-unsafe-deploy\n"
                 "        title: No unsafe deployment\n"
                 "        quote: We will not deploy models that fail our safety evaluations.\n")
    return text + extra


class Cli:
    """Runs commands against one watchlist file and one SQLite database."""

    def __init__(self, tmp_path: Path, database: str) -> None:
        self.path = tmp_path / "watchlist.yaml"
        self.database = database

    def write(self, text: str) -> None:
        self.path.write_text(text)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(main, ["--watchlist", str(self.path), "--database", self.database,
                                    *args], env=env, catch_exceptions=False)

    def process(self, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
        """The real command in its own process, where the exit code is the contract."""
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run([sys.executable, "-m", "monitor", "--watchlist", str(self.path),
                               "--database", self.database, *args],
                              cwd=self.path.parent, env=full_env, capture_output=True, text=True,
                              timeout=120)


@pytest.fixture
def cli(tmp_path: Path, sqlite_url: str) -> Cli:
    return Cli(tmp_path, sqlite_url)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- validate ---------------------------------------------------------------------------------


def test_validate_counts_what_it_found(cli: Cli, site: Site, smtp: Smtp) -> None:
    cli.write(watchlist_text(site, channel=smtp.apprise_url(), sources="one two"))
    result = cli("validate")
    assert result.exit_code == 0
    assert result.stdout == f"{cli.path}: 2 sources, 2 commitments, 1 channels: OK\n"


def test_validate_takes_a_file_argument(cli: Cli, site: Site, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(watchlist_text(site, sources="a b c"))
    assert "3 sources" in cli("validate", str(other)).stdout


def test_validate_exit_codes_in_a_real_process(cli: Cli, site: Site) -> None:
    cli.write(watchlist_text(site))
    good = cli.process("validate")
    assert (good.returncode, good.stderr) == (0, "")

    cli.write(watchlist_text(site).replace("select: main", "select: 'main >'")
              .replace("  failures_before_alert: 2\n", "  failures_before_alert: 2\n  evrey: 1h\n"))
    bad = cli.process("validate")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"{cli.path}:3: defaults: unknown key 'evrey' (did you mean 'every'?); allowed here: "
        "every, notify, jitter, failures_before_alert, host_gap, timeout, max_bytes, "
        "allow_private, robots, keep_checks, web_url",
        f"{cli.path}:9: source 'lab' select: invalid CSS selector 'main >' (Expected selector, "
        "got <EOF at 6>); fix the selector syntax",
    ]


def test_validate_never_prints_the_value_of_a_variable(cli: Cli, site: Site) -> None:
    cli.write(watchlist_text(site, channel="mailtos://${SMTP_USER}:${SMTP_PASSWORD}@mail.example.org",
                             extra="  - id: Broken\n"))
    result = cli.process("-vv", "validate", env={"SMTP_USER": "alice-user",
                                                 "SMTP_PASSWORD": "hunter2-pass"})
    assert result.returncode == 2
    assert "Broken" in result.stderr
    assert "alice-user" not in result.stderr + result.stdout
    assert "hunter2-pass" not in result.stderr + result.stdout


# --- check, changes, history ------------------------------------------------------------------


def test_check_records_a_baseline_then_alerts_the_change_once(cli: Cli, site: Site,
                                                              smtp: Smtp) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site, channel=smtp.apprise_url()))
    first = cli("check")
    assert first.exit_code == 0
    assert first.stdout.startswith("lab: baseline")
    assert smtp.mailbox.messages == []

    site.set("/lab", V2)
    second = cli("check")
    assert second.exit_code == 0
    assert second.stdout.startswith("lab: changed, 1 change")
    assert "alerts: 1 sent" in second.stdout
    [mail] = smtp.mailbox.messages
    assert mail["Subject"].startswith("[WEAKENED] Lab · Safety Policy · No unsafe deployment")

    third = cli("check")  # a restart of the command sees the stored history
    assert third.stdout.startswith("lab: unchanged")
    assert len(smtp.mailbox.messages) == 1


def test_changes_lists_newest_first_as_json_lines_and_as_csv(cli: Cli, site: Site) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site))
    cli("check")
    site.set("/lab", V2)
    cli("check")

    text = cli("changes")
    assert text.exit_code == 0
    assert "lab  WEAKENED  No unsafe deployment" in text.stdout
    assert "before: We will not deploy models that fail our safety evaluations." in text.stdout
    assert "unless a competitor has already released a comparable model" in text.stdout

    lines = cli("changes", "--json").stdout.splitlines()
    [change] = [json.loads(line) for line in lines]
    assert change["source"] == "lab"
    assert change["commitment"] == "no-unsafe-deploy"
    assert change["status"] == "weakened"
    assert change["before"] == "We will not deploy models that fail our safety evaluations."
    assert change["after"].endswith("released a comparable model.")
    assert change["reason"]
    assert change["detected_at"].endswith("Z")
    assert len(change["snapshot"]) == 64

    assert cli("changes", "--source", "other", "--json").stdout == ""
    assert "no changes recorded for 'other'" in cli("changes", "--source", "other").stderr

    [row] = list(csv.DictReader(io.StringIO(cli("changes", "--csv").stdout)))
    assert row == {key: "" if value is None else str(value) for key, value in change.items()}
    assert cli("changes", "--source", "other", "--csv").stdout.splitlines() == [
        ",".join(change)]
    assert "not both" in cli("changes", "--csv", "--json").stderr


def test_changes_limit_keeps_the_newest(cli: Cli, site: Site) -> None:
    site.set("/lab", [Response(V1), Response(V2), Response(V2.split("<p>We will not")[0]
                                                          + "<p>We will notify users.</p></main>")])
    cli.write(watchlist_text(site))
    for _ in range(3):
        cli("check")
    every = [json.loads(line) for line in cli("changes", "--json").stdout.splitlines()]
    newest = [json.loads(line) for line in cli("changes", "--json", "--limit", "1")
              .stdout.splitlines()]
    assert [change["status"] for change in every] == ["removed", "weakened"]
    assert newest == every[:1]


def test_history_shows_checks_and_versions_with_hashes(cli: Cli, site: Site) -> None:
    site.set("/lab", [Response(V1), Response("oops", status=500), Response(V2)])
    cli.write(watchlist_text(site))
    for _ in range(3):
        cli("check")
    with Session(store.make_engine(cli.database)) as session:
        checks, versions = store.history(session, "lab")
    out = cli("history", "lab").stdout
    assert "versions of lab (2):" in out
    assert "checks of lab (3):" in out
    for version in versions:
        assert f"text {version.text_sha256[:12]}" in out
    assert "failed       HTTP 500" in out
    assert out.count("changed ") == 1 and out.count("baseline ") == 1
    assert [c.outcome for c in checks] == ["changed", "failed", "baseline"]


def test_history_of_an_unknown_source_says_which_have_history(cli: Cli, site: Site) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site))
    cli("check")
    result = cli("history", "lba")
    assert result.exit_code == 2
    assert "nothing recorded for source 'lba'; sources with history: lab" in result.stderr


def test_check_exits_1_when_a_source_fails_and_still_checks_the_others(
        cli: Cli, site: Site) -> None:
    site.set("/good", V1)
    site.set("/down", Response("Service Unavailable", status=503))
    cli.write(watchlist_text(site, sources="good down"))
    result = cli.process("check")
    assert result.returncode == 1, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines[0].startswith("down: failed (http_status")
    assert lines[1].startswith("good: baseline")


def test_check_of_named_sources_only(cli: Cli, site: Site) -> None:
    site.set("/one", V1)
    cli.write(watchlist_text(site, sources="one two"))
    result = cli("check", "one")
    assert result.exit_code == 0
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["one"]
    assert site.hits("/two") == 0


def test_check_of_an_unknown_source_is_a_usage_error_with_a_hint(cli: Cli, site: Site) -> None:
    cli.write(watchlist_text(site))
    result = cli("check", "lba")
    assert result.exit_code == 2
    assert "unknown source id 'lba'" in result.stderr
    assert "did you mean 'lab'?" in result.stderr
    assert site.hits("/lab") == 0


def test_an_unreachable_database_is_named_without_its_password(cli: Cli, site: Site) -> None:
    cli.write(watchlist_text(site))
    cli.database = f"postgresql://monitor:s3cret-pw@127.0.0.1:{closed_port()}/monitor"
    result = cli("check")
    assert result.exit_code == 2
    assert "cannot open the database postgresql://monitor:***@127.0.0.1" in result.stderr
    assert "s3cret-pw" not in result.output


# --- status -----------------------------------------------------------------------------------


def test_status_shows_each_source_its_streak_and_failing_channels(cli: Cli, site: Site,
                                                                  smtp: Smtp) -> None:
    site.set("/ok", V1)
    site.set("/down", Response("no", status=500))
    cli.write(watchlist_text(site, channel=smtp.apprise_url(), sources="ok down never"))
    for _ in range(2):
        cli("check", "ok", "down")
    engine = store.make_engine(cli.database)
    with Session(engine) as session:
        alert = store.Alert(source_id="ok", kind="changes", subject="[REMOVED] x")
        session.add(alert)
        session.flush()
        session.add(store.Delivery(alert_id=alert.id, channel="team", target="t",
                                   target_label="mailto://127.0.0.1:1", status="failed",
                                   last_error="SMTPAuthenticationError: 535"))
        session.commit()

    rows = {line.split()[0]: line for line in cli("status").stdout.splitlines()}
    assert rows["ok"].split()[-2:] == ["0", "ok"]
    assert " failed " in rows["down"]
    assert "     2  FAILING since " in rows["down"]
    assert "http_status" in rows["down"]
    assert "not checked yet" in rows["never"]
    assert ("channel team: mailto://127.0.0.1:1 failed permanently (1 alerts not delivered; "
            "last error: SMTPAuthenticationError: 535)") in rows["channel"]

    failing = cli("status", "--failing").stdout.splitlines()
    assert [line.split()[0] for line in failing] == ["SOURCE", "down", "channel"]


# --- test-notify, renormalise -----------------------------------------------------------------


def test_test_notify_sends_to_the_channel(cli: Cli, site: Site, smtp: Smtp) -> None:
    cli.write(watchlist_text(site, channel=smtp.apprise_url()))
    result = cli("test-notify", "team")
    assert result.exit_code == 0
    assert result.stdout.startswith("ok      team: mailto://")
    assert len(smtp.mailbox.wait_for(1)) == 1


def test_test_notify_names_the_failing_url_masked_and_exits_1(cli: Cli, site: Site) -> None:
    url = f"mailto://alice:s3cret-pw@127.0.0.1:{closed_port()}?from=a@example.org&to=b@example.org"
    cli.write(watchlist_text(site, channel=url))
    result = cli.process("test-notify")
    assert result.returncode == 1
    assert result.stdout.startswith("FAILED  team: mailto://")
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_test_notify_of_an_unknown_channel_is_a_usage_error(cli: Cli, site: Site,
                                                            smtp: Smtp) -> None:
    cli.write(watchlist_text(site, channel=smtp.apprise_url()))
    result = cli("test-notify", "teem")
    assert result.exit_code == 2
    assert "unknown channel 'teem'" in result.stderr
    assert smtp.mailbox.messages == []


def test_renormalise_rebuilds_versions_without_alerting(cli: Cli, site: Site,
                                                        smtp: Smtp) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site, channel=smtp.apprise_url()))
    cli("check")
    result = cli("renormalise")
    assert result.exit_code == 0
    assert "no alerts sent" in result.stdout
    cli("check")
    assert smtp.mailbox.messages == []
    assert cli("changes", "--json").stdout == ""


def test_history_prints_stored_times_in_utc(cli: Cli, site: Site) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site))
    cli("check")
    with Session(store.make_engine(cli.database)) as session:
        [check], _ = store.history(session, "lab")
    started = check.started_at.replace(tzinfo=UTC)  # SQLite returns stored UTC without a zone
    line = cli("history", "lab").stdout.splitlines()[-1]
    assert line.strip().startswith(started.strftime("%Y-%m-%d %H:%M UTC  baseline"))


def _move_checks(database: str, day: datetime) -> list[str]:
    """Move every stored check to noon of ``day``, a minute apart; their outcomes in order."""
    noon = day.replace(hour=12, minute=0, second=0, microsecond=0)
    with Session(store.make_engine(database)) as session:
        checks = list(session.exec(select(store.Check).order_by(store.Check.id)))
        for minute, check in enumerate(checks):
            check.started_at = noon + timedelta(minutes=minute)
            session.add(check)
        session.commit()
        return [check.outcome for check in checks]


def test_prune_thins_old_quiet_checks_to_the_first_and_last_of_the_day(cli: Cli,
                                                                      site: Site) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site))
    for _ in range(5):
        cli("check")
    days_ago_40 = store.utcnow() - timedelta(days=40)
    assert _move_checks(cli.database, days_ago_40) == ["baseline"] + ["unchanged"] * 4
    result = cli("prune")  # defaults.keep_checks: 30 days
    assert result.exit_code == 0
    assert result.stdout.startswith("deleted 2 quiet checks older than 30 days (kept the first")
    with Session(store.make_engine(cli.database)) as session:
        checks, _ = store.history(session, "lab")
    assert [check.outcome for check in checks] == ["unchanged", "unchanged", "baseline"]


def test_prune_keeps_everything_younger_than_older_than_or_when_keep_checks_is_null(
        cli: Cli, site: Site) -> None:
    site.set("/lab", V1)
    cli.write(watchlist_text(site).replace("defaults:\n", "defaults:\n  keep_checks: null\n"))
    for _ in range(4):
        cli("check")
    _move_checks(cli.database, store.utcnow() - timedelta(days=3))
    assert "every check is kept" in cli("prune").stdout
    assert cli("prune", "--older-than", "5d").stdout.startswith("deleted 0 quiet checks")
    assert cli("prune", "--older-than", "36h").stdout.startswith(
        "deleted 1 quiet checks older than 1 day, 12:00:00 (kept")


def test_prune_with_a_bad_duration_says_how_to_write_one(cli: Cli, site: Site) -> None:
    cli.write(watchlist_text(site))
    result = CliRunner().invoke(main, ["--watchlist", str(cli.path), "--database", cli.database,
                                       "prune", "--older-than", "soon"])
    assert result.exit_code == 2
    assert "bad duration 'soon'; write a number and a unit, e.g. 30m, 6h, 1d" in result.output
