"""The read-only web view: a timeline of commitment changes, one citable page per change, source
health, the archived evidence, Atom feeds and a JSON API.

Everything shown comes from the store and the watchlist. Page text is untrusted, so templates
autoescape, the Atom feed is built by an XML library, and a strict Content-Security-Policy allows
no script at all (none is needed). Endpoints are plain functions: Starlette runs them in its
thread pool, so a slow query never blocks the event loop.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from lxml import etree
from sqlalchemy import func, tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import store
from monitor.detect import SEVERITY
from monitor.normalise import pdf
from monitor.render import change_title, citation
from monitor.store import Change, Check, Snapshot, SourceState, Version, as_utc, iso
from monitor.watchlist import Commitment, Source, Watchlist

PAGE_SIZE = 50
MAX_LIMIT = 500
FEED_SIZE = 50
SOURCE_HISTORY = 200
RECENT_CHECKS = 20
ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
SHA256 = re.compile(r"[0-9a-f]{64}")
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:commitment-monitor")
"""Atom ids are derived from what a change *is*, not from where it is served or its row id,
so a feed reader never sees a change twice after a move to another host or database."""

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def create_app(engine: Engine, watchlist: Watchlist | Callable[[], Watchlist]) -> Starlette:
    """The ASGI app; the engine and watchlist are passed in so tests can use their own. Give
    ``WatchlistFile.current`` for a watchlist read again when its file is edited."""
    app = Starlette(
        routes=[
            Route("/", timeline, name="timeline"),
            Route("/changes/{change_id:int}", change_page, name="change"),
            Route("/sources", sources_page, name="sources"),
            Route("/sources/{source_id}", source_page, name="source"),
            Route("/snapshots/{sha256}", snapshot_download, name="snapshot"),
            Route("/versions/{version_id:int}.txt", version_text, name="version"),
            Route("/feed.atom", feed_all, name="feed"),
            Route("/sources/{source_id}/feed.atom", feed_source, name="source_feed"),
            Route("/sources/{source_id}/commitments/{key}/feed.atom", feed_commitment,
                  name="commitment_feed"),
            Route("/companies/{company}/feed.atom", feed_company, name="company_feed"),
            Route("/api/changes", api_changes, name="api_changes"),
            Route("/api/changes/{change_id:int}", api_change, name="api_change"),
            Route("/api/sources", api_sources, name="api_sources"),
            Mount("/static", StaticFiles(packages=[("monitor", "static")]), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: error_page},
    )
    app.state.engine = engine
    app.state.watchlist = watchlist if callable(watchlist) else lambda: watchlist
    app.state.templates = make_templates()
    return app


class SecurityHeaders:
    """Adds the Content-Security-Policy and friends to every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = format_utc
    env.filters["iso"] = iso
    env.filters["short"] = lambda sha: sha[:12] if sha else "—"
    env.globals["diff_sides"] = diff_sides
    env.globals["statuses"] = SEVERITY
    return Jinja2Templates(env=env)


# --- reading the store ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeFilter:
    """The timeline/API query: which changes, and which page (keyset on detected_at, id)."""

    source: str | None = None
    company: str | None = None
    status: str | None = None
    commitment: str | None = None  # a commitment's id, or a discovered sentence's key
    before_id: int | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def from_query(cls, params: QueryParams, watchlist: Watchlist) -> ChangeFilter:
        """Validate the query string; a bad value is a 400 that says what is allowed."""
        values = {k: params.get(k, "").strip() or None
                  for k in ("source", "company", "status", "commitment", "before_id", "limit")}
        status = values["status"]
        if status is not None and status not in SEVERITY:
            raise HTTPException(400, f"unknown status {status!r}; use one of: "
                                     f"{', '.join(SEVERITY)}")
        company = values["company"]
        if company is not None:
            company = company_name(watchlist, company)
        return cls(source=values["source"], company=company, status=status,
                   commitment=values["commitment"],
                   before_id=_int_param("before_id", values["before_id"], 1, None),
                   limit=_int_param("limit", values["limit"], 1, MAX_LIMIT) or PAGE_SIZE)

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this filter (defaults left out), with ``changes`` applied."""
        values = {"source": self.source, "company": self.company, "status": self.status,
                  "commitment": self.commitment, "before_id": self.before_id,
                  "limit": self.limit if self.limit != PAGE_SIZE else None, **changes}
        return {k: str(v) for k, v in values.items() if v is not None}


def _int_param(name: str, value: str | None, low: int, high: int | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        bounds = f"from {low} to {high}" if high else f"of at least {low}"
        raise HTTPException(400, f"{name}={value!r} is not valid; give a whole number {bounds}")
    return int(value)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def company_name(watchlist: Watchlist, wanted: str) -> str:
    """The watchlist's spelling of a company given by name or slug; 404 when no source has it."""
    companies = sorted({source.company for source in watchlist.sources})
    for company in companies:
        if slug(company) == slug(wanted):
            return company
    raise HTTPException(404, f"no source in the watchlist belongs to company {wanted!r}; "
                             f"known companies: {', '.join(companies) or 'none'}")


def find_changes(session: Session, query: ChangeFilter,
                 watchlist: Watchlist) -> tuple[list[Change], int | None]:
    """One page of changes, newest first, and the ``before_id`` of the next page (None: last)."""
    statement = (select(Change).order_by(col(Change.detected_at).desc(), col(Change.id).desc())
                 .limit(query.limit + 1))
    if query.source:
        statement = statement.where(Change.source_id == query.source)
    if query.company:
        ids = [s.id for s in watchlist.sources if s.company == query.company]
        statement = statement.where(col(Change.source_id).in_(ids))
    if query.status:
        statement = statement.where(Change.status == query.status)
    if query.commitment:
        statement = statement.where(Change.key == query.commitment)
    if query.before_id:
        anchor = get_change(session, query.before_id)
        statement = statement.where(tuple_(Change.detected_at, Change.id)
                                    < tuple_(anchor.detected_at, anchor.id))
    changes = list(session.exec(statement))
    if len(changes) > query.limit:
        return changes[:query.limit], changes[query.limit - 1].id
    return changes, None


def get_change(session: Session, change_id: int) -> Change:
    change = session.get(Change, change_id)
    if change is None:
        raise HTTPException(404, f"there is no change #{change_id}")
    return change


@dataclass(frozen=True)
class Health:
    """A source's health at a glance, from its SourceState (None: never checked)."""

    source_id: str
    source: Source | None
    state: SourceState | None
    changes: int = 0

    @property
    def status(self) -> str:
        if self.state is None or self.state.last_checked_at is None:
            return "never checked"
        return "failing" if self.state.failing_streak else "ok"

    @property
    def sort_key(self) -> tuple[int, int, bool, str, str]:
        """Failing sources first (longest streak first), then never checked, then the rest;
        sources no longer in the watchlist last within each group."""
        streak = self.state.failing_streak if self.state else 0
        rank = {"failing": 0, "never checked": 1, "ok": 2}[self.status]
        if self.source is None:
            return (rank, -streak, True, "", self.source_id)
        return (rank, -streak, False, self.source.company, self.source.title)

    def as_json(self) -> dict[str, Any]:
        state = self.state
        return {
            "id": self.source_id,
            "company": self.source.company if self.source else None,
            "title": self.source.title if self.source else None,
            "url": (state.url if state and state.url else None)
                   or (self.source.url if self.source else None),
            "health": self.status,
            "last_checked_at": iso(state.last_checked_at) if state else None,
            "last_outcome": state.last_outcome if state else None,
            "failing_streak": state.failing_streak if state else 0,
            "failing_since": iso(state.failing_since) if state else None,
            "last_error": state.last_error if state else None,
            "changes": self.changes,
        }


HEALTH = ("failing", "never checked", "ok")


@dataclass(frozen=True)
class HealthFilter:
    """The sources overview's query: one health and/or one company (thousands of sources are
    too many to scan by eye for the few failing ones)."""

    health: str | None = None
    company: str | None = None

    @classmethod
    def from_query(cls, params: QueryParams, watchlist: Watchlist) -> HealthFilter:
        """Validate the query string; a bad value is a 400 that says what is allowed."""
        health = params.get("health", "").strip() or None
        if health is not None and health not in HEALTH:
            raise HTTPException(400, f"unknown health {health!r}; use one of: {', '.join(HEALTH)}")
        company = params.get("company", "").strip() or None
        return cls(health, company_name(watchlist, company) if company else None)

    def of_company(self, rows: Sequence[Health]) -> list[Health]:
        return [row for row in rows if self.company is None
                or row.source is not None and row.source.company == self.company]

    def of_health(self, rows: Sequence[Health]) -> list[Health]:
        return [row for row in rows if self.health is None or row.status == self.health]

    def params(self, **changes: Any) -> dict[str, str]:
        values = {"health": self.health, "company": self.company, **changes}
        return {k: v for k, v in values.items() if v is not None}


def source_health(session: Session, watchlist: Watchlist) -> list[Health]:
    """Every watched source, plus any source the store still remembers, failing ones first."""
    states = {state.source_id: state for state in session.exec(select(SourceState))}
    counts = {source_id: count for source_id, count in session.exec(
        select(Change.source_id, func.count()).group_by(Change.source_id))}
    ids = [s.id for s in watchlist.sources]
    ids += sorted((set(states) | set(counts)) - set(ids))
    sources = {s.id: s for s in watchlist.sources}
    rows = [Health(i, sources.get(i), states.get(i), counts.get(i, 0)) for i in ids]
    return sorted(rows, key=lambda row: row.sort_key)


def find_source(watchlist: Watchlist, source_id: str) -> Source | None:
    try:
        return watchlist.source(source_id)
    except KeyError:
        return None


def diff_sides(change: Change) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The before and after sentence as runs of (op, text): '=' kept, '-' deleted, '+' inserted.

    Without a stored word diff (added, removed, not_found) each side is its whole sentence.
    """
    ops = store.change_diff(change)
    if not ops:
        return ([("=", change.before)] if change.before else [],
                [("=", change.after)] if change.after else [])
    return ([(op, text) for op, text in ops if op in ("=", "-")],
            [(op, text) for op, text in ops if op in ("=", "+")])


def format_utc(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def headline(change: Change, source: Source | None) -> str:
    """'[WEAKENED] OpenAI · Usage Policies · No military use', worded like the alert subjects."""
    parts = [source.company, source.title] if source else [change.source_id]
    return f"[{change.status.upper()}] {' · '.join([*parts, change_title(change)])}"


# --- HTML pages ----------------------------------------------------------------------------------


def current_watchlist(request: Request) -> Watchlist:
    """The watchlist as its file says now: an edit shows here without a restart, as it applies
    to `run` (sources added, renamed or removed)."""
    watchlist: Watchlist = request.app.state.watchlist()
    return watchlist


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    if "watchlist" not in context:  # a handler that read it passes it: one read per request
        context["watchlist"] = current_watchlist(request)
    return request.app.state.templates.TemplateResponse(request, template, context,
                                                        status_code=status_code)


def open_session(request: Request) -> Session:
    return store.session(request.app.state.engine)


def timeline(request: Request) -> Response:
    watchlist = current_watchlist(request)
    query = ChangeFilter.from_query(request.query_params, watchlist)
    with open_session(request) as session:
        changes, next_before = find_changes(session, query, watchlist)
    older = query.params(before_id=next_before) if next_before else None
    feed = feed_url(request, query)
    return page(request, "timeline.html", changes=changes, query=query, older=older,
                feed=feed, watchlist=watchlist, sources={s.id: s for s in watchlist.sources},
                companies=sorted({s.company for s in watchlist.sources}))


def feed_url(request: Request, query: ChangeFilter) -> str:
    """The feed matching what the timeline shows: one source's, one company's, or all."""
    if query.source:
        return str(request.url_for("source_feed", source_id=query.source))
    if query.company:
        return str(request.url_for("company_feed", company=slug(query.company)))
    return str(request.url_for("feed"))


def change_page(request: Request) -> Response:
    with open_session(request) as session:
        change = get_change(session, request.path_params["change_id"])
        alert = session.get(store.Alert, change.alert_id) if change.alert_id else None
        pages = (pdf_page(session, change.old_snapshot, change.before),
                 pdf_page(session, change.new_snapshot, change.after))
    source = find_source(current_watchlist(request), change.source_id)
    cite = citation(change, source, str(request.url_for("change", change_id=change.id)), pages)
    return page(request, "change.html", change=change, source=source, alert=alert,
                title=headline(change, source), citation=cite, pages=pages)


def find_snapshot(session: Session, sha256: str) -> Snapshot | None:
    return session.exec(select(Snapshot).where(Snapshot.sha256 == sha256)).first()


def pdf_page(session: Session, sha: str | None, sentence: str | None) -> int | None:
    """The page of an archived PDF on which the sentence begins (None for a web page)."""
    snapshot = find_snapshot(session, sha) if sha and sentence else None
    if snapshot is None or snapshot.media_type != "application/pdf":
        return None
    return pdf.page_of(store.snapshot_body(snapshot), sentence or "")


def sources_page(request: Request) -> Response:
    watchlist = current_watchlist(request)
    query = HealthFilter.from_query(request.query_params, watchlist)
    with open_session(request) as session:
        rows = query.of_company(source_health(session, watchlist))
    counts = Counter(row.status for row in rows)
    return page(request, "sources.html", rows=query.of_health(rows), total=len(rows), counts=counts,
                health_names=HEALTH, query=query,
                companies=sorted({source.company for source in watchlist.sources}))


def source_page(request: Request) -> Response:
    source_id: str = request.path_params["source_id"]
    source = find_source(current_watchlist(request), source_id)
    with open_session(request) as session:
        state = session.get(SourceState, source_id)
        newest_first = (col(Change.detected_at).desc(), col(Change.id).desc())
        changes = list(session.exec(
            select(Change).where(Change.source_id == source_id).order_by(*newest_first)
            .limit(SOURCE_HISTORY)))
        # Read apart from the latest changes: a rewrite can bring hundreds of discovered
        # sentences, and a commitment's status must not fall out of view behind them.
        tracked = list(session.exec(
            select(Change).where(Change.source_id == source_id,
                                 col(Change.commitment_id).in_([c.id for c in source.commitments]))
            .order_by(*newest_first))) if source else []
        checks = list(session.exec(
            select(Check).where(Check.source_id == source_id)
            .order_by(col(Check.started_at).desc()).limit(RECENT_CHECKS)))
        versions = list(session.exec(
            select(Version, Snapshot.sha256).join(Snapshot)
            .where(Version.source_id == source_id)
            .order_by(col(Version.id).desc()).limit(RECENT_CHECKS)))
    if source is None and state is None and not changes:
        raise HTTPException(404, f"there is no source {source_id!r} in the watchlist or the store")
    return page(request, "source.html", source_id=source_id, source=source,
                health=Health(source_id, source, state), changes=changes, checks=checks,
                versions=versions, commitments=commitment_histories(source, tracked),
                changes_shown=SOURCE_HISTORY)


def commitment_histories(source: Source | None,
                         changes: Sequence[Change]) -> list[tuple[Commitment, list[Change]]]:
    """Each configured commitment with its changes, newest first; the first is its status."""
    if source is None:
        return []
    by_key: dict[str, list[Change]] = {}
    for change in changes:
        by_key.setdefault(change.commitment_id or change.key, []).append(change)
    return [(commitment, by_key.get(commitment.id, [])) for commitment in source.commitments]


def error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return page(request, "error.html", status_code=exc.status_code,
                status=exc.status_code, detail=exc.detail)


# --- evidence downloads --------------------------------------------------------------------------


def snapshot_download(request: Request) -> Response:
    """The raw bytes exactly as fetched, as an attachment: never rendered inside this site."""
    sha256: str = request.path_params["sha256"]
    if not SHA256.fullmatch(sha256):
        raise HTTPException(404, f"{sha256!r} is not a snapshot hash (64 lower-case hex digits)")
    with open_session(request) as session:
        snapshot = find_snapshot(session, sha256)
    if snapshot is None:
        raise HTTPException(404, f"there is no snapshot {sha256}")
    extension = mimetypes.guess_extension(snapshot.media_type.split(";")[0].strip()) or ".bin"
    return Response(store.snapshot_body(snapshot), headers={
        "content-type": snapshot.media_type,
        "content-disposition": f'attachment; filename="{sha256[:16]}{extension}"',
        "content-security-policy": "sandbox",
    })


def version_text(request: Request) -> Response:
    version_id: int = request.path_params["version_id"]
    with open_session(request) as session:
        version = session.get(Version, version_id)
    if version is None:
        raise HTTPException(404, f"there is no version #{version_id}")
    return Response(version.text, media_type="text/plain; charset=utf-8", headers={
        "content-disposition": f'inline; filename="{version.source_id}-{version_id}.txt"'})


# --- Atom ----------------------------------------------------------------------------------------


def feed_all(request: Request) -> Response:
    return atom_response(request, current_watchlist(request), ChangeFilter(limit=FEED_SIZE),
                         "All commitment changes")


def feed_source(request: Request) -> Response:
    source_id: str = request.path_params["source_id"]
    watchlist = current_watchlist(request)
    source = find_source(watchlist, source_id)
    title = f"{source.company} · {source.title}" if source else source_id
    return atom_response(request, watchlist, ChangeFilter(source=source_id, limit=FEED_SIZE),
                         f"Commitment changes: {title}")


def feed_commitment(request: Request) -> Response:
    """One commitment's history, for whoever follows a single pledge."""
    source_id, key = request.path_params["source_id"], request.path_params["key"]
    watchlist = current_watchlist(request)
    source = find_source(watchlist, source_id)
    name = next((c.title for c in source.commitments if c.id == key), key) if source else key
    title = f"{source.company} · {source.title}" if source else source_id
    return atom_response(request, watchlist,
                         ChangeFilter(source=source_id, commitment=key, limit=FEED_SIZE),
                         f"Commitment changes: {title} · {name}")


def feed_company(request: Request) -> Response:
    watchlist = current_watchlist(request)
    company = company_name(watchlist, request.path_params["company"])
    return atom_response(request, watchlist, ChangeFilter(company=company, limit=FEED_SIZE),
                         f"Commitment changes: {company}")


def atom_response(request: Request, watchlist: Watchlist, query: ChangeFilter,
                  title: str) -> Response:
    with open_session(request) as session:
        changes, _ = find_changes(session, query, watchlist)
    html_url = str(request.url_for("timeline").include_query_params(**query.params()))
    feed = atom_feed(request, changes, {source.id: source for source in watchlist.sources},
                     title=title, html_url=html_url,
                     feed_key=f"feed:{query.source or ''}:{query.company or ''}"
                     + (f":{query.commitment}" if query.commitment else ""))
    # Feed readers poll often; an ETag lets them skip an unchanged feed with a 304.
    etag = f'"{store.sha256(feed)[:32]}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"etag": etag})
    return Response(feed, media_type=ATOM_TYPE, headers={"etag": etag})


def atom_feed(request: Request, changes: Sequence[Change], sources: Mapping[str, Source], *,
              title: str, html_url: str, feed_key: str) -> bytes:
    """An RFC 4287 feed; lxml escapes every text, so page text cannot break out of it."""
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    # An empty feed has never changed; the epoch keeps its bytes (and ETag) stable.
    newest = max((as_utc(c.detected_at) for c in changes), default=datetime.fromtimestamp(0, UTC))
    _sub(feed, "id", urn(feed_key))
    _sub(feed, "title", title)
    _sub(feed, "updated", iso(newest))
    _sub(_sub(feed, "author"), "name", "Commitment Monitor")
    _sub(feed, "link", rel="self", href=str(request.url), type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=html_url, type="text/html")
    for change in changes:  # a dict lookup each: a scan of thousands of sources per entry was
        feed.append(atom_entry(request, change, sources.get(change.source_id)))  # most of it
    return etree.tostring(feed, xml_declaration=True, encoding="utf-8")


def atom_entry(request: Request, change: Change, source: Source | None) -> etree._Element:
    entry = etree.Element(f"{{{ATOM}}}entry")
    _sub(entry, "id", urn(change_identity(change)))
    _sub(entry, "title", headline(change, source))
    _sub(entry, "updated", iso(change.detected_at))
    _sub(entry, "published", iso(change.detected_at))
    _sub(entry, "link", rel="alternate", type="text/html",
         href=str(request.url_for("change", change_id=change.id)))
    _sub(entry, "category", term=change.status)
    _sub(entry, "summary", change.reason, type="text")
    html = request.app.state.templates.get_template("_entry.html").render(change=change)
    _sub(entry, "content", html, type="html")
    return entry


def _sub(parent: etree._Element, tag: str, text: str | None = None,
         **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    element.text = text
    return element


def change_identity(change: Change) -> str:
    return "change:" + "|".join([change.source_id, change.key, change.status,
                                 change.new_snapshot or "", iso(change.detected_at) or ""])


def urn(key: str) -> str:
    return uuid.uuid5(ID_NAMESPACE, key).urn


# --- JSON API ------------------------------------------------------------------------------------


def api_changes(request: Request) -> Response:
    """``changes --json`` objects, newest first; ``next`` is the URL of the following page."""
    watchlist = current_watchlist(request)
    query = ChangeFilter.from_query(request.query_params, watchlist)
    with open_session(request) as session:
        changes, next_before = find_changes(session, query, watchlist)
    following = None
    if next_before:
        params = query.params(before_id=next_before)
        following = str(request.url_for("api_changes").include_query_params(**params))
    return JSONResponse({"changes": [store.change_json(c) for c in changes], "next": following})


def api_change(request: Request) -> Response:
    with open_session(request) as session:
        change = get_change(session, request.path_params["change_id"])
    return JSONResponse(store.change_json(change))


def api_sources(request: Request) -> Response:
    watchlist = current_watchlist(request)
    query = HealthFilter.from_query(request.query_params, watchlist)
    with open_session(request) as session:
        rows = query.of_company(source_health(session, watchlist))
    return JSONResponse({"sources": [row.as_json() for row in query.of_health(rows)]})
