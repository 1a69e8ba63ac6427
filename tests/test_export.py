"""`export SOURCE_ID --format git DIR`: one dated commit per stored version, appendable."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from monitor import store
from monitor.cli import main
from monitor.export import ExportError, export_git

T0 = datetime(2026, 2, 24, 10, 12, tzinfo=UTC)
PAGE = "<html><body><main><p>We will publish a Risk Report every {} months.</p></main></html>"


def add_version(engine: Engine, source_id: str, n: int, at: datetime,
                media_type: str = "text/html") -> str:
    """Store one raw snapshot and its normalised version, as the pipeline would."""
    raw = PAGE.format(n).encode() if media_type == "text/html" else b"%PDF-1.7 fake " + bytes([n])
    text = f"# Policy\nWe will publish a Risk Report every {n} months."
    with store.session(engine) as session:
        packed = store.pack_snapshot(raw, media_type, at)
        snapshot_id = store.store_snapshot(session, packed)
        session.add(store.Version(source_id=source_id, snapshot_id=snapshot_id, text=text,
                                  text_sha256=store.sha256(text), normaliser_version=1,
                                  url=f"https://example.org/{source_id}", fetched_at=at))
        session.commit()
        return str(packed["sha256"])


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The export directory (tmp_path itself holds the SQLite file)."""
    return tmp_path / "export"


def git_log(directory: Path) -> list[tuple[str, str, str]]:
    """(author date, committer date, full message) per commit, oldest first."""
    out = subprocess.run(["git", "log", "--reverse", "--format=%aI%x00%cI%x00%B%x01"],
                         cwd=directory, capture_output=True, text=True, check=True).stdout
    return [tuple(entry.strip("\n").split("\x00")) for entry in out.split("\x01")
            if entry.strip()]  # type: ignore[misc]


def test_each_version_becomes_one_commit_dated_at_its_fetch_time(engine: Engine,
                                                                 tmp_path: Path) -> None:
    days = {3: 0, 4: 31, 6: 120}
    shas = [add_version(engine, "lab-rsp", n, T0 + timedelta(days=days[n])) for n in days]
    add_version(engine, "other-source", 9, T0)

    report = export_git(engine, "lab-rsp", tmp_path / "out")

    assert (report.added, report.existing) == (3, 0)
    log = git_log(tmp_path / "out")
    assert [entry[0] for entry in log] == [
        "2026-02-24T10:12:00+00:00", "2026-03-27T10:12:00+00:00", "2026-06-24T10:12:00+00:00"]
    assert [entry[1] for entry in log] == [entry[0] for entry in log]
    assert log[0][2].startswith("lab-rsp: version fetched 2026-02-24 10:12:00 UTC\n")
    assert "Fetched: 2026-02-24T10:12:00Z" in log[0][2]
    for (_, _, message), sha in zip(log, shas, strict=True):
        assert f"Snapshot: {sha}" in message
        assert "URL: https://example.org/lab-rsp" in message
    text = (tmp_path / "out" / "lab-rsp.md").read_text()
    assert text == "# Policy\nWe will publish a Risk Report every 6 months.\n"
    assert b"every 6 months" in (tmp_path / "out" / "lab-rsp.html").read_bytes()


def test_the_diff_between_commits_shows_the_relaxed_number(sqlite_engine: Engine,
                                                           out: Path) -> None:
    add_version(sqlite_engine, "lab-rsp", 3, T0)
    add_version(sqlite_engine, "lab-rsp", 6, T0 + timedelta(days=1))
    export_git(sqlite_engine, "lab-rsp", out)

    diff = subprocess.run(["git", "diff", "HEAD~1", "HEAD", "--", "lab-rsp.md"], cwd=out,
                          capture_output=True, text=True, check=True).stdout
    assert "-We will publish a Risk Report every 3 months." in diff
    assert "+We will publish a Risk Report every 6 months." in diff


def test_a_second_export_appends_only_the_new_versions(engine: Engine, out: Path) -> None:
    add_version(engine, "lab-rsp", 3, T0)
    add_version(engine, "lab-rsp", 4, T0 + timedelta(days=1))
    export_git(engine, "lab-rsp", out)
    add_version(engine, "lab-rsp", 6, T0 + timedelta(days=2))

    report = export_git(engine, "lab-rsp", out)

    assert (report.added, report.existing) == (1, 2)
    log = git_log(out)
    assert len(log) == 3
    assert log[-1][0] == "2026-02-26T10:12:00+00:00"
    assert export_git(engine, "lab-rsp", out).added == 0


def test_a_raw_file_that_changes_type_replaces_the_old_one(sqlite_engine: Engine,
                                                           out: Path) -> None:
    add_version(sqlite_engine, "lab-rsp", 3, T0)
    add_version(sqlite_engine, "lab-rsp", 4, T0 + timedelta(days=1), media_type="application/pdf")

    export_git(sqlite_engine, "lab-rsp", out)

    tracked = subprocess.run(["git", "ls-files"], cwd=out, capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(tracked) == ["lab-rsp.md", "lab-rsp.pdf"]


def test_a_non_empty_directory_that_is_not_an_export_is_refused(sqlite_engine: Engine,
                                                                out: Path) -> None:
    add_version(sqlite_engine, "lab-rsp", 3, T0)
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    with pytest.raises(ExportError, match="not empty and is not a previous export"):
        export_git(sqlite_engine, "lab-rsp", out)
    assert not (out / ".git").exists()


def test_another_sources_export_is_refused(sqlite_engine: Engine, out: Path) -> None:
    add_version(sqlite_engine, "lab-rsp", 3, T0)
    add_version(sqlite_engine, "lab-aup", 3, T0)
    export_git(sqlite_engine, "lab-aup", out)

    with pytest.raises(ExportError, match="holds the export of source 'lab-aup'"):
        export_git(sqlite_engine, "lab-rsp", out)


def test_an_unknown_source_is_a_clear_error(sqlite_engine: Engine, out: Path) -> None:
    with pytest.raises(ExportError, match="no stored versions of source 'nope'"):
        export_git(sqlite_engine, "nope", out)
    assert not out.exists()


def test_export_command_writes_the_repository(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/monitor.db"
    engine = store.make_engine(url)
    store.create_schema(engine)
    add_version(engine, "lab-rsp", 3, T0)
    engine.dispose()

    args = ["--database", url, "export", "lab-rsp", "--format", "git", str(tmp_path / "export")]
    first = CliRunner().invoke(main, args)
    again = CliRunner().invoke(main, args)

    assert first.exit_code == 0, first.output
    assert "1 new commits, 0 already exported" in first.output
    assert "0 new commits, 1 already exported" in again.output
    refused = CliRunner().invoke(main, ["--database", url, "export", "lab-rsp", str(tmp_path)])
    assert refused.exit_code == 2
    assert "is not empty and is not a previous export" in refused.output
