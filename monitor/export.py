"""Export a source's version history as a git repository anyone can cite, diff and mirror.

One commit per stored Version, oldest first: ``<source-id>.md`` holds the normalised text (the
citable document) and ``<source-id>.<ext>`` the raw snapshot it came from. Author and committer
dates are the fetch time; the message names the snapshot's sha256, the URL and the fetch time, so
a commit can be checked against the store. Exporting again into the same directory appends only
the versions stored since (Open Terms Archive keeps its public record the same way).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor import store
from monitor.errors import MonitorError

AUTHOR = ("Commitment Monitor", "commitment-monitor@localhost")
SOURCE_KEY = "commitment-monitor.source"  # git config key marking a directory as our export
RAW_EXTENSIONS = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/markdown": "txt",
}


class ExportError(MonitorError):
    """The export cannot be written: unknown source, unusable directory, or git failed."""


@dataclass(frozen=True)
class ExportReport:
    added: int     # commits written by this export
    existing: int  # versions already in the repository from an earlier export


@dataclass(frozen=True)
class ExportedVersion:
    text: str
    text_sha256: str
    raw: bytes
    raw_sha256: str
    media_type: str
    url: str
    fetched_at: datetime

    @property
    def key(self) -> str:
        """Identity of a version across exports (database ids differ between installations)."""
        return f"{self.text_sha256}@{store.iso(self.fetched_at)}"


def export_git(engine: Engine, source_id: str, directory: Path | str) -> ExportReport:
    """Write (or extend) the git history of ``source_id`` in ``directory``."""
    directory = Path(directory)
    versions = load_versions(engine, source_id)
    if not versions:
        raise ExportError(f"no stored versions of source {source_id!r}; check the id "
                          "(`commitment-monitor history SOURCE_ID`) or run a check first")
    prepare_repository(directory, source_id)
    done = exported_keys(directory)
    new = [v for v in versions if v.key not in done]
    for version in new:
        commit_version(directory, source_id, version)
    return ExportReport(added=len(new), existing=len(versions) - len(new))


def load_versions(engine: Engine, source_id: str) -> list[ExportedVersion]:
    """Every stored version of the source with its raw snapshot, in fetch order."""
    query = (select(store.Version, store.Snapshot)
             .join(store.Snapshot, col(store.Version.snapshot_id) == col(store.Snapshot.id))
             .where(store.Version.source_id == source_id)
             .order_by(col(store.Version.fetched_at), col(store.Version.id)))
    with Session(engine) as session:
        return [ExportedVersion(text=version.text, text_sha256=version.text_sha256,
                                raw=store.snapshot_body(snapshot), raw_sha256=snapshot.sha256,
                                media_type=snapshot.media_type, url=version.url,
                                fetched_at=store.as_utc(version.fetched_at))
                for version, snapshot in session.exec(query)]


def prepare_repository(directory: Path, source_id: str) -> None:
    """Create a fresh repository, or reuse a previous export of the same source; refuse the rest."""
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} is a file; give a directory for the git export")
    if directory.exists() and any(directory.iterdir()):
        marker = ""
        if (directory / ".git").is_dir():
            marker = _git(directory, "config", "--get", SOURCE_KEY, check=False).strip()
        if not marker:
            raise ExportError(f"{directory} is not empty and is not a previous export; "
                              "choose a new or empty directory")
        if marker != source_id:
            raise ExportError(f"{directory} holds the export of source {marker!r}, not "
                              f"{source_id!r}; choose another directory")
        return
    directory.mkdir(parents=True, exist_ok=True)
    _git(directory, "init", "--quiet", "--initial-branch=main")
    _git(directory, "config", SOURCE_KEY, source_id)


def exported_keys(directory: Path) -> set[str]:
    """The version keys already committed, read back from the commit trailers."""
    if not _git(directory, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip():
        return set()
    log = _git(directory, "log", "--format=%(trailers:key=Version,valueonly)")
    return {line.strip() for line in log.splitlines() if line.strip()}


def commit_version(directory: Path, source_id: str, version: ExportedVersion) -> None:
    text_file = f"{source_id}.md"
    raw_file = f"{source_id}.{RAW_EXTENSIONS.get(version.media_type, 'bin')}"
    (directory / text_file).write_text(version.text + "\n", encoding="utf-8")
    (directory / raw_file).write_bytes(version.raw)
    for stale in directory.glob(f"{source_id}.*"):  # the raw file changed type (HTML -> PDF)
        if stale.name not in (text_file, raw_file):
            _git(directory, "rm", "--quiet", "--", stale.name)
    _git(directory, "add", "--", text_file, raw_file)
    _git(directory, "commit", "--quiet", "--allow-empty", "--file=-",
         stdin=commit_message(source_id, version), date=version.fetched_at)


def commit_message(source_id: str, version: ExportedVersion) -> str:
    """A readable subject and body, then trailers that `git log --format=%(trailers)` reads."""
    when = version.fetched_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"{source_id}: version fetched {when}\n\n"
            f"Snapshot {version.raw_sha256} ({version.media_type}, {len(version.raw)} bytes)\n"
            f"fetched from {version.url} at {when}.\n\n"
            f"Snapshot: {version.raw_sha256}\n"
            f"URL: {version.url}\n"
            f"Fetched: {store.iso(version.fetched_at)}\n"
            f"Version: {version.key}\n")


def _git(directory: Path, *args: str, stdin: str | None = None, date: datetime | None = None,
         check: bool = True) -> str:
    """Run git in ``directory`` with a fixed identity, ignoring the user's global config."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
           "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1]}
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date.isoformat()
    try:
        done = subprocess.run(["git", *args], cwd=directory, input=stdin, env=env,
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ExportError("the git command is not installed; install git to export") from None
    if check and done.returncode != 0:
        raise ExportError(f"git {args[0]} failed in {directory}: {done.stderr.strip()}")
    return done.stdout
