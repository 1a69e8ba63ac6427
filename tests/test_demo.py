"""`commitment-monitor demo`: the real pipeline against a replayed history on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CORPUS
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor import demo, store
from monitor.cli import main

FSF = "northwind-frontier-safety-framework"
AUP = "northwind-usage-policy"


@dataclass
class Replayed:
    engine: Engine
    output: str
    summary: demo.Summary


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """The bundled Northwind history replayed once; the tests below read what it stored."""
    engine = store.make_engine(f"sqlite:///{tmp_path_factory.mktemp('demo')}/demo.db")
    store.create_schema(engine)
    lines: list[str] = []
    summary = demo.run(demo.find_documents(demo.HISTORY), engine=engine, echo=lines.append)
    yield Replayed(engine, "\n".join(lines), summary)
    engine.dispose()


def statuses(engine: Engine, source_id: str) -> dict[str | None, list[str]]:
    """commitment id (None for discovered sentences) -> statuses in detection order."""
    found: dict[str | None, list[str]] = {}
    with Session(engine) as session:
        for change in session.exec(select(store.Change).where(store.Change.source_id == source_id)
                                   .order_by(col(store.Change.id))):
            found.setdefault(change.commitment_id, []).append(change.status)
    return found


def test_framework_weakenings_are_reported_as_weakened(bundled: Replayed) -> None:
    found = statuses(bundled.engine, FSF)
    assert found["pause-when-safeguards-late"] == ["weakened"]       # will pause -> may pause
    assert found["evaluation-cadence"] == ["weakened"]               # every 3 -> 6 months
    assert found["no-training-without-safeguards"] == ["weakened"]   # competitor exception


def test_a_deleted_framework_section_is_reported_removed(bundled: Replayed) -> None:
    assert statuses(bundled.engine, FSF)["external-review"] == ["removed"]


def test_a_prohibited_use_dropped_from_the_list_is_reported_removed(bundled: Replayed) -> None:
    found = statuses(bundled.engine, AUP)
    assert found["no-military-use"] == ["removed"]
    assert found["no-exceptions"] == ["weakened"]            # "except for government customers"
    # Dropping "including by governments" narrows the scope; the engine calls it reworded.
    assert found["no-mass-surveillance"] in (["weakened"], ["reworded"])
    assert "no-weapons" not in found


def test_the_cosmetic_re_render_sends_nothing(bundled: Replayed) -> None:
    """Tick 2 re-renders the framework (markup, whitespace, entities, cookie banner, date)."""
    with Session(bundled.engine) as session:
        checks = session.exec(select(store.Check).where(store.Check.source_id == FSF)
                              .order_by(col(store.Check.id))).all()
        alerted = set(session.exec(select(store.Alert.check_id)
                                   .where(store.Alert.source_id == FSF)))
    assert [c.outcome for c in checks][:2] == ["baseline", "changed"]
    assert checks[1].id not in alerted
    assert {c.id for c in checks[2:]} == alerted


def test_the_flapping_error_page_is_a_failed_check_never_a_removal(bundled: Replayed) -> None:
    with Session(bundled.engine) as session:
        checks = session.exec(select(store.Check).where(store.Check.source_id == AUP)
                              .order_by(col(store.Check.id))).all()
        kinds = set(session.exec(select(store.Alert.kind).where(store.Alert.source_id == AUP)))
    assert [c.outcome for c in checks] == ["baseline", "failed", "unchanged", "changed", "failed"]
    assert checks[1].error_kind == checks[4].error_kind == "selector_empty"
    assert kinds == {"changes"}  # one failure at a time stays below failures_before_alert
    removed = [k for k, s in statuses(bundled.engine, AUP).items() if "removed" in s]
    assert removed == ["no-military-use"]


def test_each_alert_is_shown_as_the_message_that_would_be_sent(bundled: Replayed) -> None:
    assert ">>> [REMOVED] Northwind AI · Frontier Safety Framework" in bundled.output
    assert ">>> [REMOVED] Northwind AI · Usage Policy" in bundled.output
    assert ">>> [WEAKENED] Northwind AI · Frontier Safety Framework" in bundled.output
    assert "we may pause training and deployment" in bundled.output
    assert "--- tick 5/5" in bundled.output


def test_the_summary_counts_alerts_changes_and_failed_checks(bundled: Replayed) -> None:
    summary = bundled.summary
    assert summary.ticks == 5
    assert summary.alerts["changes"] == 4
    assert summary.changes["removed"] == 2 and summary.changes["weakened"] >= 4
    assert summary.failed_checks == {"selector_empty": 2}
    assert "failed checks (source health, never a removal): 2 selector_empty" in summary.lines()


def test_alerts_arrive_by_email_at_a_local_smtp_server(smtp, tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path}/demo.db")
    store.create_schema(engine)
    documents = demo.find_documents(demo.HISTORY, only=["northwind/usage-policy"])
    summary = demo.run(documents, engine=engine, echo=lambda _: None,
                       smtp=(smtp.host, smtp.port))
    engine.dispose()

    assert summary.emails_sent == 1
    [message] = smtp.mailbox.wait_for(1)
    assert message["Subject"].startswith("[REMOVED] Northwind AI · Usage Policy")
    assert "Support military and warfare applications" in message.get_body(("plain",)).get_content()


def write_page(directory: Path, stamp: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stamp}.html").write_text(f"<html><body><main>{body}</main></body></html>")


def test_corpus_replay_reads_stamped_snapshots_and_ignores_versions(tmp_path: Path) -> None:
    policy = tmp_path / "corpus" / "acme" / "privacy-policy"
    intro = "<h1>Privacy Policy</h1><p>This policy explains what Acme collects and why.</p>"
    write_page(policy, "2024-01-01T000000Z",
               intro + "<p>We will never sell your personal data to third parties.</p>"
                       "<p>We will delete your data within 30 days of a request.</p>")
    write_page(policy, "2024-06-01T000000Z",
               intro + "<p>We will delete your data within 30 days of a request.</p>")
    (policy / "versions").mkdir()
    (policy / "versions" / "2024-01-01T000000Z.md").write_text("# not a snapshot")
    (policy / "notes.txt").write_text("ignored")
    engine = store.make_engine(f"sqlite:///{tmp_path}/demo.db")
    store.create_schema(engine)

    [document] = demo.find_documents(tmp_path / "corpus")
    summary = demo.run([document], engine=engine, echo=lambda _: None)

    assert document.source_id == "acme-privacy-policy" and len(document.snapshots) == 2
    assert summary.ticks == 2 and summary.changes == {"removed": 1}
    with Session(engine) as session:
        change = session.exec(select(store.Change)).one()
    engine.dispose()
    assert change.before == "We will never sell your personal data to third parties."


@pytest.mark.skipif(not (CORPUS / "openai" / "usage-policies").is_dir(),
                    reason=f"the shared corpus is absent at {CORPUS}")
def test_real_corpus_military_and_warfare_removal_is_reported_removed(tmp_path: Path) -> None:
    """OpenAI's usage policies lost "Military and warfare" on 10 January 2024."""
    corpus = tmp_path / "corpus"
    (corpus / "openai").mkdir(parents=True)
    (corpus / "openai" / "usage-policies").symlink_to(CORPUS / "openai" / "usage-policies")
    engine = store.make_engine(f"sqlite:///{tmp_path}/demo.db")
    store.create_schema(engine)

    summary = demo.run(demo.find_documents(corpus), engine=engine, echo=lambda _: None, ticks=2)

    found = statuses(engine, "openai-usage-policies")
    engine.dispose()
    assert summary.ticks == 2
    assert found["no-military-and-warfare"] == ["removed"]


def test_an_unknown_document_is_a_clear_error() -> None:
    with pytest.raises(demo.DemoError, match="no snapshots for northwind/nope"):
        demo.find_documents(demo.HISTORY, only=["northwind/nope"])


def test_a_missing_corpus_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="is not a directory"):
        demo.find_documents(tmp_path / "absent")


def test_smtp_address_must_be_host_and_port() -> None:
    assert demo.parse_smtp("127.0.0.1:1025") == ("127.0.0.1", 1025)
    with pytest.raises(ValueError, match="not HOST:PORT"):
        demo.parse_smtp("localhost")


def test_demo_command_runs_without_a_watchlist_or_network(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never-used")

    result = CliRunner().invoke(main, ["demo", "--interval", "0", "--ticks", "3",
                                       "--document", "northwind/frontier-safety-framework"])

    assert result.exit_code == 0, result.output
    assert "replayed 3 ticks" in result.output
    assert "[WEAKENED] Northwind AI · Frontier Safety Framework" in result.output
    assert not (tmp_path / "state").exists()  # a throwaway database, never the service's


def test_any_directory_name_becomes_a_valid_source_id() -> None:
    document = demo.Document("Acme Corp", "Privacy Policy (EU)", ())
    assert document.source_id == "acme-corp-privacy-policy-eu"
