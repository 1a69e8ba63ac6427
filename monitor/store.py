"""Storage: SQLModel tables and the engine. The store is the only state the service shares.

* Snapshot   raw bytes as fetched, content-addressed (sha256), zlib-compressed, stored once
             (level 1: 2.6x faster than level 6 on policy pages for 14% more bytes)
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

import functools
import hashlib
import json
import os
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    event,
    func,
    insert,
    or_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel, col, create_engine, select
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from sqlalchemy.dialects import postgresql
    from sqlalchemy.engine import Row

DEFAULT_DATABASE_URL = "sqlite:///state/monitor.db"
SQLITE_BUSY_SECONDS = 30.0
"""How long a SQLite connection waits for another's lock before "database is locked"."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Snapshot(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(index=True, unique=True, max_length=64)
    media_type: str
    charset: str | None = None  # the HTTP charset it was read with, to read it the same way again
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
    # One source's checks in time order: its history, and thinning one source-day at a time.
    __table_args__ = (Index("ix_check_source_id_started_at", "source_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str
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
    check_id: int | None = Field(default=None, foreign_key="check.id", index=True)
    kind: str  # changes | health_failing | health_recovered | new_version | delivery_expired
    subject: str
    detail: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Change(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    source_id: str = Field(index=True)
    check_id: int | None = Field(default=None, foreign_key="check.id", index=True)
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
    target: str  # sha256 of channel + resolved URL: identifies it without storing secrets
    target_label: str  # privacy-masked URL, safe to show
    # pending | sending | sent | failed (permanently) | expired (too old to retry)
    status: str = Field(default="pending", index=True)
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
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS,
                                                  "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = connection.cursor()
    _enable_wal(cursor)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON",
                   f"busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch a new database file to WAL (a no-op once it is). The switch needs the file to
    itself, and SQLite refuses it at once, without waiting on the busy timeout, while another
    connection holds a lock: replicas starting together on a new file would fail to open it.
    So try again, for as long as the busy timeout would have waited."""
    for attempt in Retrying(retry=retry_if_exception(_is_locked), wait=wait_fixed(0.02),
                            stop=stop_after_delay(SQLITE_BUSY_SECONDS), reraise=True):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def create_schema(engine: Engine) -> None:
    """Apply the Alembic migrations up to head: upgrades keep every row, replicas take turns."""
    from monitor import migrations  # its env.py imports this module

    migrations.upgrade(engine)


# --- Sessions and queries ----------------------------------------------------------------------


def session(engine: Engine) -> Session:
    """A session whose objects stay readable after commit (callers print them afterwards)."""
    return Session(engine, expire_on_commit=False)


def recent_changes(session: Session, *, source_id: str | None = None,
                   limit: int | None = None) -> list[Change]:
    """Detected commitment changes, newest first."""
    query = select(Change).order_by(col(Change.detected_at).desc(), col(Change.id).desc())
    if source_id is not None:
        query = query.where(Change.source_id == source_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def history(session: Session, source_id: str) -> tuple[list[Check], list[Version]]:
    """Every check and every distinct version of one source, newest first."""
    checks = session.exec(select(Check).where(Check.source_id == source_id)
                          .order_by(col(Check.started_at).desc(), col(Check.id).desc()))
    versions = session.exec(select(Version).where(Version.source_id == source_id)
                            .order_by(col(Version.fetched_at).desc(), col(Version.id).desc()))
    return list(checks), list(versions)


def source_states(session: Session) -> list[SourceState]:
    return list(session.exec(select(SourceState).order_by(col(SourceState.source_id))))


def alert_changes(session: Session, alert_id: int) -> list[Change]:
    """The changes one alert carries, in the order they were found."""
    return list(session.exec(select(Change).where(Change.alert_id == alert_id)
                             .order_by(col(Change.id))))


def removed_sentences(session: Session, source_id: str) -> set[str]:
    """Sentences reported removed from this source before, so their return reads "restored"."""
    return {before for before in session.scalars(_REMOVED, {"sid": source_id}) if before}


def reported_missing(session: Session, source_id: str) -> set[str]:
    """Keys of configured quotes already reported as not found in this source."""
    return set(session.scalars(_NOT_FOUND, {"sid": source_id}))


# Built once: every changed check reads both (building an ORM statement costs more than running it).
_REMOVED = select(Change.before).where(  # type: ignore[call-overload]
    Change.source_id == bindparam("sid"), Change.status == "removed")
_NOT_FOUND = select(Change.key).where(  # type: ignore[call-overload]
    Change.source_id == bindparam("sid"), Change.status == "not_found")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a "Z", the form every machine-readable output uses."""
    if moment is None:
        return None
    return as_utc(moment).isoformat().replace("+00:00", "Z")


CHANGE_FIELDS = ("id", "source", "commitment", "title", "status", "before", "after", "reason",
                 "section", "detected_at", "snapshot", "old_snapshot", "url")
"""The keys of change_json, in its order: the columns of `changes --csv`."""


def change_json(change: Change) -> dict[str, Any]:
    """The public JSON form of a change (`changes --json`, the web view's API)."""
    return {
        "id": change.id,
        "source": change.source_id,
        "commitment": change.commitment_id,
        "title": change.commitment_title,
        "status": change.status,
        "before": change.before,
        "after": change.after,
        "reason": change.reason,
        "section": change.section_after or change.section_before,
        "detected_at": iso(change.detected_at),
        "snapshot": change.new_snapshot,
        "old_snapshot": change.old_snapshot,
        "url": change.url,
    }


def change_diff(change: Change) -> list[tuple[str, str]]:
    """The stored word-level diff as (op, text) pairs; op is "=", "-" or "+"."""
    return [(op, text) for op, text in json.loads(change.diff)] if change.diff else []


# --- Snapshots ---------------------------------------------------------------------------------


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def pack_snapshot(body: bytes, media_type: str, at: datetime,
                  charset: str | None = None) -> dict[str, Any]:
    """A snapshot row ready to insert: hashed and compressed before any transaction starts, so
    a writer never holds the database's write lock while it compresses."""
    return {"sha256": sha256(body), "media_type": media_type, "charset": charset,
            "size": len(body), "body": zlib.compress(body, 1), "first_seen_at": at}


def store_snapshot(session: Session, packed: dict[str, Any]) -> int:
    """Store raw bytes once per sha256 and return the row's id; concurrent checks storing the
    same bytes both succeed (the second finds the first's row)."""
    new = _insert_new(session.get_bind().dialect.name, Snapshot, ("sha256",))
    inserted = session.execute(new, packed).scalar()
    if inserted is not None:
        return int(inserted)
    return int(session.execute(_SNAPSHOT_ID, {"sha": packed["sha256"]}).scalar_one())


def add_version(session: Session, values: dict[str, Any]) -> int:
    """The id of this source's version with this text (a page can return to an old text), a new
    row when there is none."""
    new = _insert_new(session.get_bind().dialect.name, Version,
                      ("source_id", "text_sha256", "normaliser_version"))
    inserted = session.execute(new, values).scalar()
    if inserted is not None:
        return int(inserted)
    return int(session.execute(_VERSION_ID, values).scalar_one())


def snapshot_body(snapshot: Snapshot) -> bytes:
    return zlib.decompress(snapshot.body)


def _insert(bind: Engine | Connection,
            table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT DO NOTHING, in the dialect of the database at hand."""
    return _dialect_insert(bind.dialect.name, table)


def _dialect_insert(dialect: str, table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # 40 ms to import: only when it is in use

        return postgresql.insert(table)
    return sqlite.insert(table)


@functools.cache
def _insert_new(dialect: str, table: type[SQLModel], key: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, built once per dialect and table
    (a check's record runs it for its snapshot and its version)."""
    return (_dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=list(key))
            .returning(table.__table__.c.id))  # type: ignore[attr-defined]


_SNAPSHOT_ID = (select(Snapshot.id)  # type: ignore[call-overload]
                .where(Snapshot.sha256 == bindparam("sha")))
_VERSION_ID = (select(Version.id)  # type: ignore[call-overload]
               .where(Version.source_id == bindparam("source_id"),
                      Version.text_sha256 == bindparam("text_sha256"),
                      Version.normaliser_version == bindparam("normaliser_version")))


# --- Leases ------------------------------------------------------------------------------------


# Core statements built once: a quiet check runs two of them and the lease claim, and building
# ORM statements per call cost more than running them (bench/README.md).
_STATE = SourceState.__table__  # type: ignore[attr-defined]
_CLAIM = (update(_STATE)
          .where(_STATE.c.source_id == bindparam("sid"),
                 or_(_STATE.c.lease_owner.is_(None), _STATE.c.lease_owner == bindparam("worker"),
                     _STATE.c.lease_expires_at < bindparam("now")))
          .values(lease_owner=bindparam("worker"), lease_expires_at=bindparam("until"))
          .returning(*_STATE.c))
_HELD = update(_STATE).where(_STATE.c.source_id == bindparam("sid"),
                             _STATE.c.lease_owner == bindparam("worker"))
"""SET comes from the execute parameters: an update that does nothing unless the lease is ours."""
_LOCK = _HELD.returning(*_STATE.c)
_STATE_COLUMNS = [column.name for column in _STATE.c if column.name != "source_id"]
_SAVE_STATE = update(_STATE).where(_STATE.c.source_id == bindparam("sid"))
_CHECK = insert(Check.__table__)  # type: ignore[attr-defined]
_ADD_CHECK = _CHECK.returning(_CHECK.table.c.id)
_LAST_CHECKED = select(_STATE.c.last_checked_at).where(_STATE.c.source_id == bindparam("sid"))


def last_checked_at(engine: Engine, source_id: str) -> datetime | None:
    """When the source was last checked, by any process (None: never). The daemon reads it
    before every scheduled check: one prebuilt statement (28 µs), not an ORM load (123 µs)."""
    with engine.connect() as conn:
        moment = conn.execute(_LAST_CHECKED, {"sid": source_id}).scalar()
    return as_utc(moment) if moment is not None else None


def acquire_lease(engine: Engine, source_id: str, *, worker: str, now: datetime,
                  ttl: timedelta) -> SourceState | None:
    """Claim one source for one check, so two workers or replicas never check it at once, and
    return its state as of the claim (None: another worker holds it).

    A conditional UPDATE takes the lease when it is free, expired (its worker died) or already
    ours; the database decides the race. Committed at once so other workers see it.
    """
    claim = {"sid": source_id, "worker": worker, "now": now, "until": now + ttl}
    with engine.begin() as conn:
        row = conn.execute(_CLAIM, claim).first()
        if row is None and conn.execute(
                _insert(engine, SourceState)
                .values(source_id=source_id, failing_streak=0, health_alerted=False)
                .on_conflict_do_nothing(index_elements=["source_id"])).rowcount:
            row = conn.execute(_CLAIM, claim).first()  # a source checked for the first time
    return SourceState(**row._mapping) if row is not None else None


def release_lease(engine: Engine, source_id: str, *, worker: str) -> None:
    with engine.begin() as conn:
        conn.execute(_HELD, {"sid": source_id, "worker": worker, "lease_owner": None,
                             "lease_expires_at": None})


def lock_state(session: Session, source_id: str, worker: str) -> SourceState | None:
    """Re-assert our lease as a transaction's first write (it locks the row, or on SQLite the
    database) and read the source's state fresh in the same statement. None: the lease expired
    and another worker took the source over. Write the state back with ``save_state``."""
    row = session.execute(_LOCK, {"sid": source_id, "worker": worker,
                                  "lease_owner": worker}).first()
    return SourceState(**row._mapping) if row is not None else None


def save_state(session: Session, state: SourceState) -> None:
    """Write back a state read by ``lock_state`` (the caller holds its lease)."""
    values = {column: getattr(state, column) for column in _STATE_COLUMNS}
    session.execute(_SAVE_STATE, {"sid": state.source_id, **values})


def add_check(session: Session, values: dict[str, Any]) -> Check:
    """Insert one check row; returns it with its id (not attached to the session)."""
    check_id = session.execute(_ADD_CHECK, values).scalar_one()
    return Check(id=check_id, **values)


def record_quiet_check(engine: Engine, worker: str, state: dict[str, Any],
                       check: dict[str, Any]) -> bool:
    """Store a check that found nothing new, update its source's state and release the lease,
    in one commit. False (nothing stored) when the lease was lost to another worker."""
    with engine.begin() as conn:
        held = {"sid": check["source_id"], "worker": worker, "lease_owner": None,
                "lease_expires_at": None}
        if conn.execute(_HELD, held | state).rowcount != 1:
            conn.rollback()
            return False
        conn.execute(_CHECK, check)
    return True


# --- Retention ---------------------------------------------------------------------------------


QUIET_OUTCOMES = ("not_modified", "unchanged")
"""Checks that found the document as it was: the bulk of the table, and the only rows thinned."""
_CHECKS = Check.__table__  # type: ignore[attr-defined]
_QUIET = _CHECKS.c.outcome.in_(QUIET_OUTCOMES)
_IN_DAY = (_CHECKS.c.started_at >= bindparam("start"), _CHECKS.c.started_at < bindparam("end"))
_OLDEST_QUIET = select(func.min(_CHECKS.c.started_at)).where(_QUIET)
_OF_SOURCES = _CHECKS.c.source_id.in_(bindparam("sources", expanding=True))
_CROWDED_SOURCES = (
    select(_CHECKS.c.source_id, func.count()).where(_QUIET, *_IN_DAY)
    .group_by(_CHECKS.c.source_id).having(func.count() > 2).order_by(_CHECKS.c.source_id))
"""The sources with more than two quiet checks in one day (with how many): those to thin. A
read, so a day thinned already (every day, after a restart) takes no write lock."""
_THIN_SOURCES = delete(_CHECKS).where(
    _QUIET, *_IN_DAY, _OF_SOURCES,
    *(_CHECKS.c.id.not_in(select(edge(_CHECKS.c.id)).where(_QUIET, *_IN_DAY, _OF_SOURCES)
                          .group_by(_CHECKS.c.source_id)) for edge in (func.min, func.max)),
    *(_CHECKS.c.id.not_in(select(cited).where(cited.is_not(None)))
      for cited in (col(Alert.check_id), col(Change.check_id))))
"""Some sources' quiet checks of one day but the first and last of each source and those an
alert or a change cites: one statement, so the database does the work rather than Python."""
THIN_BATCH_ROWS = 5_000
"""Quiet checks one delete reads at most (a source with more is a batch of its own). On SQLite
a delete holds the write lock that every check waits for: at 5,000 sources checked hourly a
whole day at once held it 4.5 s, and checks every 5 minutes would make that a minute."""
THIN_BATCH_SOURCES = 300
"""...and sources: each is a bound parameter, three times over, and SQLite before 3.32 takes at
most 999 in a statement."""


def thin_checks(engine: Engine, before: datetime, *, since: datetime | None = None,
                keep_going: Callable[[], bool] = lambda: True) -> int:
    """Delete the quiet checks of every whole UTC day before ``before``, except the first and
    the last of each source's day and those an alert or a change points to. Returns how many.
    ``since``: the days before it were thinned already (each day read costs a query).
    ``keep_going`` is asked before each delete: a daemon told to stop does not finish a year.
    Each delete takes a batch of sources (THIN_BATCH_ROWS), in a transaction of its own.

    A quiet check only proves that nothing changed, and two a day keep that proof (unchanged
    from the first to the last); an hourly check of 5,000 sources otherwise adds 9 GB of rows a
    year. Failures, baselines and changes are never thinned."""
    with engine.connect() as conn:
        oldest = conn.execute(_OLDEST_QUIET).scalar()
    if oldest is None:
        return 0
    day = start_of_day(max(as_utc(oldest), since) if since else as_utc(oldest))
    deleted = 0
    while day + timedelta(days=1) <= before:
        bounds = {"start": day, "end": day + timedelta(days=1)}
        with engine.connect() as conn:
            crowded = conn.execute(_CROWDED_SOURCES, bounds).all()
        for sources in _batches(crowded):
            if not keep_going():
                return deleted
            with engine.begin() as conn:
                deleted += conn.execute(_THIN_SOURCES, bounds | {"sources": sources}).rowcount
        day += timedelta(days=1)
    return deleted


def _batches(counts: Sequence[Row[tuple[str, int]]]) -> Iterator[list[str]]:
    """Source ids in consecutive batches of at most THIN_BATCH_ROWS checks (or one source with
    more) and THIN_BATCH_SOURCES sources."""
    batch: list[str] = []
    rows = 0
    for source_id, count in counts:
        if batch and (rows + count > THIN_BATCH_ROWS or len(batch) == THIN_BATCH_SOURCES):
            yield batch
            batch, rows = [], 0
        batch.append(source_id)
        rows += count
    if batch:
        yield batch


def start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
