"""The `commitment-monitor` command: one flat click group, one function per subcommand.

Exit codes: 0 done, 1 something could not be checked or sent (the rest still ran), 2 usage,
watchlist or database errors. Messages say what failed and what to do; no secret is printed.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

import click
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor import __version__, demo, export, fetch, notify, ops, pipeline, store
from monitor import watchlist as watchlist_module
from monitor.errors import WatchlistError
from monitor.watchlist import Watchlist

USAGE_ERROR = 2


@dataclass(frozen=True)
class Settings:
    """The global options, resolved once."""

    watchlist_path: Path
    database_url: str

    def load_watchlist(self, path: Path | None = None) -> Watchlist:
        """The validated watchlist, or exit 2 printing every problem."""
        try:
            return watchlist_module.load(path or self.watchlist_path)
        except WatchlistError as exc:
            exit_with_problems(exc)

    def engine(self) -> Engine:
        """The database with its schema up to date, or exit 2 saying which URL failed."""
        try:
            engine = store.make_engine(self.database_url)
            store.create_schema(engine)
        except (SQLAlchemyError, OSError) as exc:
            fail(f"cannot open the database {masked_url(self.database_url)} "
                 f"({exc.__class__.__name__}: {_first_line(exc)}); check --database or "
                 "DATABASE_URL and that the server is running")
        return engine


def masked_url(url: str) -> str:
    """The database URL with its password hidden, safe to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def exit_with_problems(exc: WatchlistError) -> NoReturn:
    """Print every watchlist problem, one FILE:LINE: line each, and exit 2."""
    for problem in exc.problems:
        click.echo(str(problem), err=True)
    raise SystemExit(USAGE_ERROR) from None


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Libraries log every request and every job run at INFO; only -vv wants that.
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--watchlist", "watchlist_path", type=click.Path(path_type=Path),
              envvar="MONITOR_WATCHLIST", show_envvar=True,
              help="Watchlist YAML. Default: config/watchlist.yaml, else the bundled "
                   "seeds/ai-labs.yaml.")
@click.option("--database", "database_url", envvar="DATABASE_URL", show_envvar=True,
              help=f"SQLAlchemy URL (sqlite:///... or postgresql://...). "
                   f"Default: {store.DEFAULT_DATABASE_URL}.")
@click.option("-v", "--verbose", count=True, help="-v: log each step; -vv: also libraries.")
@click.version_option(__version__, prog_name="commitment-monitor")
@click.pass_context
def main(ctx: click.Context, watchlist_path: Path | None, database_url: str | None,
         verbose: int) -> None:
    """Watch policy documents and alert when a commitment in them changes."""
    _setup_logging(verbose)
    ctx.obj = Settings(watchlist_path or watchlist_module.default_path(),
                       database_url or store.DEFAULT_DATABASE_URL)


pass_settings = click.make_pass_decorator(Settings)


@main.command()
@click.argument("file", required=False, type=click.Path(path_type=Path))
@pass_settings
def validate(settings: Settings, file: Path | None) -> None:
    """Check a watchlist; print every problem as FILE:LINE: what is wrong; what to do."""
    path = file or settings.watchlist_path
    watchlist = settings.load_watchlist(path)
    commitments = sum(len(source.commitments) for source in watchlist.sources)
    click.echo(f"{path}: {len(watchlist.sources)} sources, {commitments} commitments, "
               f"{len(watchlist.channels)} channels: OK")


@main.command()
@click.argument("source_ids", nargs=-1, metavar="[SOURCE_ID]...")
@pass_settings
def check(settings: Settings, source_ids: tuple[str, ...]) -> None:
    """Check all (or the named) sources now, then send the alerts this produced.

    Exit 1 when any source could not be fetched or read; the others are still checked.
    """
    watchlist = settings.load_watchlist()
    _require_sources(watchlist, source_ids)
    engine = settings.engine()
    summaries = pipeline.check_all(watchlist, engine=engine, source_ids=source_ids or None)
    if not summaries:
        click.echo(f"no sources in {watchlist.path}; add some under 'sources:'", err=True)
    for summary in summaries:
        click.echo(summary.line())
    report = notify.deliver_pending(engine, watchlist)
    if report.sent or report.failed or report.expired:
        click.echo(f"alerts: {report.sent} sent, {report.failed} failed (retried by the next "
                   f"check or by `run`), {report.expired} expired")
    if any(summary.outcome == "failed" for summary in summaries):
        raise SystemExit(1)


def _require_sources(watchlist: Watchlist, source_ids: Iterable[str]) -> None:
    known = [source.id for source in watchlist.sources]
    for source_id in source_ids:
        if source_id not in known:
            close = difflib.get_close_matches(source_id, known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"unknown source id {source_id!r} in {watchlist.path}{guess}; "
                 "`commitment-monitor status` lists every source")


@main.command()
@click.option("--metrics-port", type=click.IntRange(1, 65535), envvar=ops.PORT_ENV,
              show_envvar=True, help="Serve Prometheus /metrics and /healthz on this port "
                                     "(off by default).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              envvar="MONITOR_METRICS_HOST", show_envvar=True,
              help="Address for --metrics-port; 0.0.0.0 in a container.")
@pass_settings
def run(settings: Settings, metrics_port: int | None, metrics_host: str) -> None:
    """Run the monitor: every source on its interval, alerts sent, watchlist edits applied.

    SIGTERM or Ctrl-C lets the checks in flight finish, then exits 0.
    """
    logging.getLogger("monitor").setLevel(min(logging.INFO, logging.getLogger().level))
    stopping = threading.Event()  # set by a signal, even one arriving while we start up
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    from monitor import scheduler  # only `run` needs APScheduler

    engine = settings.engine()
    service = scheduler.Service(settings.watchlist_path, engine)
    try:
        watchlist = service.start()
    except WatchlistError as exc:
        exit_with_problems(exc)
    click.echo(f"watching {len(watchlist.sources)} sources from {settings.watchlist_path} "
               f"(edits are applied without restart); database {masked_url(settings.database_url)}",
               err=True)
    if metrics_port:
        try:
            ops.serve(engine, metrics_port, metrics_host)
        except OSError as exc:
            service.stop()
            fail(f"cannot serve /metrics on {metrics_host}:{metrics_port} ({exc.strerror}); "
                 "choose another --metrics-port")
        click.echo(f"/metrics and /healthz on http://{metrics_host}:{metrics_port}", err=True)
    stopping.wait()
    click.echo("stopping: letting the checks in flight finish", err=True)
    service.stop()
    engine.dispose()


@main.command()
@click.option("--source", "source_id", metavar="ID", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True,
              help="A CSV table with the fields of --json, for a spreadsheet.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@pass_settings
def changes(settings: Settings, source_id: str | None, as_json: bool, as_csv: bool,
            limit: int | None) -> None:
    """The detected commitment changes, newest first."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    with store.session(settings.engine()) as session:
        rows = store.recent_changes(session, source_id=source_id, limit=limit)
    if as_csv:
        table = io.StringIO()
        writer = csv.DictWriter(table, store.CHANGE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(store.change_json(change) for change in rows)
        click.echo(table.getvalue(), nl=False)
        return
    for number, change in enumerate(rows):
        if as_json:
            click.echo(json.dumps(store.change_json(change), ensure_ascii=False))
        else:
            click.echo(("\n" if number else "") + _change_text(change))
    if not rows and not as_json:
        click.echo("no changes recorded" + (f" for {source_id!r}" if source_id else ""), err=True)


def _change_text(change: store.Change) -> str:
    title = change.commitment_title or change.commitment_id or "(discovered sentence)"
    lines = [f"{_when(change.detected_at)}  {change.source_id}  {change.status.upper()}  {title}",
             f"    why: {change.reason}"]
    if change.before:
        lines.append(f"    before: {_shorten(change.before)}")
    if change.after:
        lines.append(f"    after:  {_shorten(change.after)}")
    lines.append(f"    snapshot: {change.new_snapshot or '-'}  {change.url}")
    return "\n".join(lines)


@main.command()
@click.argument("source_id")
@pass_settings
def history(settings: Settings, source_id: str) -> None:
    """Every check and every stored version of one source, newest first."""
    with store.session(settings.engine()) as session:
        checks, versions = store.history(session, source_id)
        snapshots = _snapshot_hashes(session, [v.snapshot_id for v in versions]
                                     + [c.snapshot_id for c in checks if c.snapshot_id])
        if not checks and not versions:
            known = [state.source_id for state in store.source_states(session)]
            fail(f"nothing recorded for source {source_id!r}; sources with history: "
                 f"{', '.join(known) or 'none yet (run `check` first)'}")
    click.echo(f"versions of {source_id} ({len(versions)}):")
    for version in versions:
        click.echo(f"  {_when(version.fetched_at)}  text {version.text_sha256[:12]}  "
                   f"snapshot {snapshots.get(version.snapshot_id, '?')[:12]}  "
                   f"normaliser v{version.normaliser_version}  {version.url}")
    click.echo(f"checks of {source_id} ({len(checks)}):")
    for item in checks:
        status = f"HTTP {item.http_status}" if item.http_status else "no response"
        snapshot = snapshots.get(item.snapshot_id or 0, "")[:12] or "-"
        error = f"  {item.error_kind}: {item.error}" if item.outcome == "failed" else ""
        click.echo(f"  {_when(item.started_at)}  {item.outcome:<12} {status:<11} "
                   f"{item.bytes:>9} B {item.duration_ms:>6} ms  snapshot {snapshot}{error}")


def _snapshot_hashes(session: Session, ids: Sequence[int]) -> dict[int, str]:
    query = select(store.Snapshot.id, store.Snapshot.sha256).where(
        col(store.Snapshot.id).in_(set(ids)))
    return {row[0]: row[1] for row in session.exec(query)}


@main.command()
@click.option("--failing", is_flag=True,
              help="Only the sources whose last check failed (flaky or FAILING).")
@pass_settings
def status(settings: Settings, failing: bool) -> None:
    """Every source with its last check, outcome, failing streak and health; failing channels."""
    watchlist = settings.load_watchlist()
    with store.session(settings.engine()) as session:
        states = {state.source_id: state for state in store.source_states(session)}
        failed_targets = _failing_targets(session)
    threshold = watchlist.defaults.failures_before_alert
    width = max([len("SOURCE"), *(len(source_id) for source_id in states),
                 *(len(source.id) for source in watchlist.sources)])
    click.echo(f"{'SOURCE':<{width}}  {'LAST CHECK':<20} {'OUTCOME':<13} {'STREAK':>6}  HEALTH")
    for source in watchlist.sources:
        state = states.get(source.id)
        streak = state.failing_streak if state else 0
        if failing and not streak:
            continue
        last = _when(state.last_checked_at) if state and state.last_checked_at else "never"
        outcome = (state.last_outcome if state else None) or "-"
        click.echo(f"{source.id:<{width}}  {last:<20} {outcome:<13} {streak:>6}  "
                   f"{_health(state, threshold)}")
    if not failing:
        for source_id in sorted(states.keys() - {source.id for source in watchlist.sources}):
            click.echo(f"{source_id:<{width}}  (no longer in the watchlist; its history is kept)")
    for (channel, label), (count, error) in failed_targets.items():
        click.echo(f"channel {channel}: {label} failed permanently ({count} alerts not "
                   f"delivered; last error: {error or 'none recorded'}); fix the URL or its "
                   f"credentials, then run `commitment-monitor test-notify {channel}`")


def _failing_targets(session: Session) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(channel, masked URL) -> (alerts it failed permanently, the latest error)."""
    query = (select(store.Delivery).where(store.Delivery.status == "failed")
             .order_by(col(store.Delivery.id).desc()))
    failing: dict[tuple[str, str], tuple[int, str | None]] = {}
    for delivery in session.exec(query):
        key = (delivery.channel, delivery.target_label)
        count, error = failing.get(key, (0, delivery.last_error))
        failing[key] = (count + 1, error)
    return failing


def _health(state: store.SourceState | None, threshold: int) -> str:
    if state is None or state.last_checked_at is None:
        return "not checked yet"
    if state.failing_streak == 0:
        return "ok"
    since = f" since {_when(state.failing_since)}" if state.failing_since else ""
    word = "FAILING" if state.failing_streak >= threshold else "flaky"
    return f"{word}{since}: {state.last_error or 'unknown error'}"


@main.command("test-notify")
@click.argument("channel", required=False)
@pass_settings
def test_notify(settings: Settings, channel: str | None) -> None:
    """Send a test message to every URL of one channel (or of all); say which failed and why."""
    watchlist = settings.load_watchlist()
    if not watchlist.channels:
        fail(f"no channels defined in {watchlist.path}; add a 'channels:' section")
    if channel is not None and channel not in watchlist.channels:
        fail(f"unknown channel {channel!r}; defined in {watchlist.path}: "
             f"{', '.join(watchlist.channels)}")
    results = notify.send_test(watchlist, channel)
    for result in results:
        if result.ok:
            click.echo(f"ok      {result.channel}: {result.label}")
        else:
            click.echo(f"FAILED  {result.channel}: {result.label}: {result.error}")
    if any(not result.ok for result in results):
        raise SystemExit(1)


@main.command()
@click.argument("source_ids", nargs=-1, required=True, metavar="SOURCE_ID...")
@pass_settings
def accept(settings: Settings, source_ids: tuple[str, ...]) -> None:
    """Fetch the named sources now and take what they serve as their new baseline, silently.

    For a page that shrank or was restructured for good: until its new text is accepted, its
    checks fail as 'collapsed' and the old version is kept.
    """
    watchlist = settings.load_watchlist()
    _require_sources(watchlist, source_ids)
    engine = settings.engine()
    with fetch.make_client(watchlist.defaults) as client:
        summaries = [pipeline.check_source(watchlist.source(source_id), watchlist, engine=engine,
                                           client=client, rebaseline=True)
                     for source_id in source_ids]
    for summary in summaries:
        click.echo(summary.line())
    notify.deliver_pending(engine, watchlist)
    if any(summary.outcome == "failed" for summary in summaries):
        raise SystemExit(1)


@main.command()
@pass_settings
def renormalise(settings: Settings) -> None:
    """Rebuild every stored version with the current normaliser, without sending alerts."""
    watchlist = settings.load_watchlist()
    count = pipeline.renormalise(watchlist, engine=settings.engine())
    click.echo(f"rebuilt {count} versions from stored snapshots (a silent rebaseline: "
               "no alerts sent)")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    try:
        return None if value is None else watchlist_module.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--older-than", callback=_duration, metavar="DURATION",
              help="Thin the checks older than this (e.g. 7d) instead of the watchlist's "
                   "defaults.keep_checks.")
@pass_settings
def prune(settings: Settings, older_than: timedelta | None) -> None:
    """Thin old quiet checks to the first and last of each source's day.

    The daemon does this every few hours by itself; failures, new versions, changes and the
    checks an alert points to are always kept.
    """
    keep = older_than or settings.load_watchlist().defaults.keep_checks
    if keep is None:
        click.echo("defaults.keep_checks is null in the watchlist: every check is kept "
                   "(pass --older-than to prune anyway)")
        return
    deleted = store.thin_checks(settings.engine(), store.utcnow() - keep)
    age = str(keep).removesuffix(", 0:00:00")  # "30 days", "1 day, 12:00:00"
    click.echo(f"deleted {deleted} quiet checks older than {age} (kept the first and last "
               "of each source's day, and every failure, version, change and alerted check)")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the view beyond this machine.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@pass_settings
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the read-only web view, Atom feeds and JSON API of the recorded changes."""
    import uvicorn  # only `serve` needs the web stack

    from monitor import web

    watchlist = watchlist_module.WatchlistFile(settings.watchlist_path)
    try:
        watchlist.load()
    except WatchlistError as exc:
        exit_with_problems(exc)
    app = web.create_app(settings.engine(), watchlist.current)
    click.echo(f"serving http://{host}:{port}/ from database "
               f"{masked_url(settings.database_url)} and watchlist {settings.watchlist_path} "
               "(edits show without restart); Ctrl-C stops", err=True)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    uvicorn.run(app, host=host, port=port, log_level=level, server_header=False)


def _when(moment: datetime | None) -> str:
    return store.as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _shorten(text: str, width: int = 240) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command("demo")
@click.option("--corpus", type=click.Path(path_type=Path),
              help="Replay this directory, laid out as <service>/<document>/<stamp>.html|pdf "
                   "(like ../shared/corpus), instead of the bundled Northwind AI history.")
@click.option("--document", "documents", multiple=True, metavar="SERVICE/DOCUMENT",
              help="Only this document of the history (repeatable).")
@click.option("--ticks", type=click.IntRange(min=1),
              help="Stop after N ticks. Default: when the history is exhausted.")
@click.option("--interval", type=click.FloatRange(min=0), default=2.0, show_default=True,
              metavar="SECONDS", help="Pause between ticks.")
@click.option("--smtp", metavar="HOST:PORT",
              help="Also email every alert through this SMTP server, e.g. 127.0.0.1:1025 for "
                   "the compose profile's mailpit.")
@click.pass_context
def demo_command(ctx: click.Context, corpus: Path | None, documents: tuple[str, ...],
                 ticks: int | None, interval: float, smtp: str | None) -> None:
    """Replay a policy history on 127.0.0.1 through the real pipeline and show the alerts.

    Needs no internet access and no watchlist. Each tick serves the next snapshot of every
    document, checks them all, and prints each alert as it would be sent. The database is a
    throwaway SQLite file unless --database is given on the command line (DATABASE_URL is
    ignored, so a demo never writes into the service's database).
    """
    try:
        mail = demo.parse_smtp(smtp) if smtp else None
        history = demo.find_documents(corpus or demo.HISTORY, documents)
    except (ValueError, demo.DemoError) as exc:
        fail(str(exc))
    explicit = ctx.parent is not None and ctx.parent.get_parameter_source(
        "database_url") is click.core.ParameterSource.COMMANDLINE
    settings = ctx.find_object(Settings)
    with demo.database(settings.database_url if explicit and settings else None) as engine:
        summary = demo.run(history, engine=engine, echo=click.echo, ticks=ticks,
                           interval=interval, smtp=mail)
    for line in summary.lines():
        click.echo(line)


@main.command("export")
@click.argument("source_id")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["git"]), default="git",
              show_default=True, help="git: one commit per version, dated at its fetch time.")
@pass_settings
def export_command(settings: Settings, source_id: str, directory: Path, output_format: str) -> None:
    """Write SOURCE_ID's version history to DIRECTORY, to cite and diff with standard tools.

    DIRECTORY must be new, empty, or an earlier export of the same source (then only the
    versions stored since are added).
    """
    try:
        report = export.export_git(settings.engine(), source_id, directory)
    except export.ExportError as exc:
        fail(str(exc))
    click.echo(f"{directory}: {report.added} new commits, {report.existing} already exported "
               f"(git -C {directory} log --stat)")
