"""Storage: SQLModel tables and the engine. The store is the only state the service shares.

* Snapshot   raw bytes as fetched, content-addressed (sha256), zlib-compressed, stored once
* Version    one distinct normalised text of one source, with the normaliser's version
* Check      every check of a source: when, HTTP status, bytes, duration, outcome, error
* SourceState per-source memory: validators for conditional GET, last check, failing streak, lease
* Change     one detected change of one commitment (a stored detect.Finding), with its evidence
* Alert      one message to send: the changes of one check of one source, or one health event
* Delivery   the outbox: one row per alert and target, claimed with a conditional UPDATE
* Attempt    every delivery attempt with its error

SQLite under state/ by default; PostgreSQL when DATABASE_URL says so.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine

DEFAULT_DATABASE_URL = "sqlite:///state/monitor.db"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Snapshot(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True, unique=True, max_length=64)
    media_type: str
    size: int
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # zlib-compressed
    first_seen_at: datetime = Field(default_factory=utcnow)


class Version(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("source_id", "text_sha256", "normaliser_version"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(index=True)
    snapshot_id: int = Field(foreign_key="snapshot.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    text_sha256: str = Field(max_length=64)
    normaliser_version: int
    url: str
    fetched_at: datetime


class Check(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(index=True)
    started_at: datetime = Field(index=True)
    duration_ms: int = 0
    url: str
    http_status: int | None = None
    bytes: int = 0
    outcome: str  # baseline | changed | unchanged | not_modified | failed
    error_kind: str | None = None
    error: str | None = None
    snapshot_id: int | None = Field(default=None, foreign_key="snapshot.id")
    version_id: int | None = Field(default=None, foreign_key="version.id")


class SourceState(SQLModel, table=True):
    source_id: str = Field(primary_key=True)
    url: str | None = None  # the document URL last tracked (after `follow`)
    etag: str | None = None
    last_modified: str | None = None
    raw_sha256: str | None = None
    config_hash: str | None = None
    version_id: int | None = Field(default=None, foreign_key="version.id")
    last_checked_at: datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    failing_streak: int = 0
    failing_since: datetime | None = None
    health_alerted: bool = False
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


class Alert(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(index=True)
    check_id: int | None = Field(default=None, foreign_key="check.id")
    kind: str  # changes | health_failing | health_recovered | new_version | delivery_expired
    subject: str
    detail: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Change(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    source_id: str = Field(index=True)
    check_id: int | None = Field(default=None, foreign_key="check.id")
    commitment_id: str | None = None
    commitment_title: str | None = None
    key: str  # stable identity of the tracked sentence (commitment id, or hash of the sentence)
    status: str
    reason: str
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    diff: str | None = Field(default=None, sa_column=Column(Text))  # JSON list of [op, text]
    section_before: str | None = None
    section_after: str | None = None
    old_version_id: int | None = Field(default=None, foreign_key="version.id")
    new_version_id: int | None = Field(default=None, foreign_key="version.id")
    old_snapshot: str | None = None  # sha256
    new_snapshot: str | None = None  # sha256
    old_fetched_at: datetime | None = None
    new_fetched_at: datetime | None = None
    url: str
    detected_at: datetime = Field(default_factory=utcnow, index=True)


class Delivery(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("alert_id", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    channel: str
    target: str  # sha256 of the resolved URL: identifies it without storing secrets
    target_label: str  # privacy-masked URL, safe to show
    status: str = Field(default="pending", index=True)  # pending | sending | sent | failed | expired
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Attempt(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    ok: bool
    error: str | None = None


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def make_engine(url: str | None = None) -> Engine:
    """Create the engine; SQLite gets WAL and a busy timeout so a reader never blocks a check."""
    url = url or database_url()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        os.makedirs(os.path.dirname(url.removeprefix("sqlite:///")) or ".", exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_schema(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
