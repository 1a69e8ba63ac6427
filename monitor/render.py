"""All alert wording: subjects, plain-text and HTML bodies for commitment changes and health events.

Page text is untrusted: every piece of it is escaped in HTML (markupsafe), and subjects are
folded to one line so a page cannot inject mail headers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from monitor import store
from monitor.detect import SEVERITY
from monitor.store import Alert, Change
from monitor.watchlist import Source

SUBJECT_SENTENCE_CHARS = 60
HEALTH_TAGS = {
    "health_failing": "FAILING",
    "health_recovered": "RECOVERED",
    "new_version": "NEW VERSION",
    "delivery_expired": "UNDELIVERED",
}


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    body: str
    """The HTML of the message's content, without the page around it (a digest joins them)."""

    @property
    def html(self) -> str:
        return str(_page(self.subject, Markup(self.body)))


# --- Subjects ----------------------------------------------------------------------------------


def one_line(text: str, limit: int | None = None) -> str:
    """Fold whitespace (newlines included) and abbreviate with an ellipsis past ``limit``."""
    folded = re.sub(r"\s+", " ", text).strip()
    if limit is not None and len(folded) > limit:
        folded = folded[: limit - 1].rstrip() + "…"
    return folded


def severity(status: str) -> int:
    """0 for the most severe status; unknown statuses sort last."""
    return SEVERITY.index(status) if status in SEVERITY else len(SEVERITY)  # type: ignore[arg-type]


def tag(status: str) -> str:
    """'not_found' -> 'NOT FOUND', as subjects and headings show a status."""
    return status.replace("_", " ").upper()


def changes_subject(changes: Sequence[Change], source: Source) -> str:
    """'[REMOVED] OpenAI · Usage Policies · No military use', naming the most severe change
    (a configured commitment before a discovered sentence) and counting the others."""
    first = min(changes, key=lambda c: (severity(c.status), c.commitment_title is None))
    what = change_title(first)
    if len(changes) > 1:
        what += f" (+{len(changes) - 1} more)"
    return one_line(f"[{tag(first.status)}] {source.company} · {source.title} · {what}")


def health_subject(kind: str, source: Source, what: str) -> str:
    return one_line(f"[{HEALTH_TAGS[kind]}] {source.company} · {source.title} · {what}")


def change_title(change: Change) -> str:
    """The commitment's title, or the tracked sentence itself, abbreviated."""
    if change.commitment_title:
        return one_line(change.commitment_title)
    return one_line(change.after or change.before or change.key, SUBJECT_SENTENCE_CHARS)


# --- Bodies ------------------------------------------------------------------------------------


FULL_CHANGES = 20
FULL_CHARS = 20_000
BRIEF_CHANGES = 100
"""A message shows the most severe changes in full (at most FULL_CHANGES, within about
FULL_CHARS of text) and the rest one line each, up to BRIEF_CHANGES: a rewritten policy (OpenAI's
usage policies in January 2024: 116 changes) must still read as one message and fit Slack's
(apprise passes longer bodies through; Slack's limit is about 40,000 characters)."""


def render_changes(alert: Alert, changes: Sequence[Change], source: Source,
                   subject: str | None = None, web_url: str | None = None) -> Message:
    """One message for every change one check of one source found, most severe first (or for
    those a channel wants, under their own ``subject``), each with its permalink when the web
    view's address (``web_url``) is known."""
    subject = subject or alert.subject
    ordered = sorted(changes, key=lambda c: (severity(c.status), c.id or 0))
    url = ordered[0].url if ordered else source.url
    texts = [_change_text(c, web_url) for c in ordered]
    full = _fitting(texts)
    rest = ordered[full:]
    text = "\n\n".join([*([_tally(ordered)] if rest else []), *texts[:full],
                         *([_brief_text(rest, source)] if rest else [])])
    text += f"\n\nsource: {url}\n"
    html = Markup("<p>{}</p>\n").format(_tally(ordered)) if rest else Markup("")
    html += Markup("").join(_change_html(c, web_url) for c in ordered[:full])
    if rest:
        html += _brief_html(rest, source)
    html += Markup('<p>source: <a href="{0}">{0}</a></p>').format(url)
    return Message(subject, text, str(html))


def _fitting(texts: Sequence[str]) -> int:
    """How many changes are shown in full: at least one, at most FULL_CHANGES and FULL_CHARS."""
    used = 0
    for count, text in enumerate(texts[:FULL_CHANGES]):
        used += len(text)
        if count and used > FULL_CHARS:
            return count
    return min(len(texts), FULL_CHANGES)


def _tally(changes: Sequence[Change]) -> str:
    """'116 changes: 3 removed, 20 weakened, 93 reworded.' (most severe status first)."""
    counts = Counter(change.status for change in changes)  # keeps their most-severe-first order
    parts = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in counts.items())
    return f"{len(changes)} changes: {parts}."


def _brief_lines(rest: Sequence[Change]) -> list[str]:
    lines = [f"[{tag(c.status)}] {one_line(change_title(c), 100)}" for c in rest[:BRIEF_CHANGES]]
    if len(rest) > BRIEF_CHANGES:
        lines.append(f"... and {len(rest) - BRIEF_CHANGES} more")
    return lines


def _everything(source: Source) -> str:
    return f"Every change with its evidence: commitment-monitor changes --source {source.id}"


def _brief_text(rest: Sequence[Change], source: Source) -> str:
    lines = [f"{len(rest)} more, one line each:", *(f"- {line}" for line in _brief_lines(rest))]
    return "\n".join([*lines, _everything(source)])


def _brief_html(rest: Sequence[Change], source: Source) -> Markup:
    items = Markup("").join(Markup("<li>{}</li>").format(line) for line in _brief_lines(rest))
    return Markup("<h3>{} more, one line each</h3>\n<ul>{}</ul>\n<p>{}</p>\n").format(
        len(rest), items, _everything(source))


def render_health(alert: Alert, source: Source) -> Message:
    """A source-health event (failing, recovered, new version, undelivered alerts)."""
    detail = alert.detail or ""
    text = f"{detail}\n\nsource: {source.url}\nat: {when(alert.created_at)}\n"
    body = Markup("<p>{}</p>").format(detail).replace("\n", Markup("<br>\n"))
    body += Markup('<p>source: <a href="{0}">{0}</a><br>at: {1}</p>').format(
        source.url, when(alert.created_at))
    return Message(alert.subject, text, str(body))


def _change_text(change: Change, web_url: str | None = None) -> str:
    lines = [f"[{tag(change.status)}] {change_title(change)}"]
    if change.before is not None:
        lines += [f"  before ({_evidence(change.old_snapshot, change.old_fetched_at)}):",
                  f'    "{change.before}"']
    if change.after is not None:
        lines += [f"  after ({_evidence(change.new_snapshot, change.new_fetched_at)}):",
                  f'    "{change.after}"']
    diff = store.change_diff(change)
    if _has_edits(diff):
        lines.append("  changed: " + " ".join(_text_op(op, words) for op, words in diff))
    section = _section(change)
    if section:
        lines.append(f"  section: {section}")
    lines.append(f"  why: {change.reason}")
    if web_url and change.id:
        lines.append(f"  permalink: {web_url}/changes/{change.id}")
    return "\n".join(lines)


def _change_html(change: Change, web_url: str | None = None) -> Markup:
    parts = [Markup("<h3>[{}] {}</h3>").format(tag(change.status), change_title(change))]
    if change.before is not None:
        parts.append(_sentence_html("before", change.before, change.old_snapshot,
                                    change.old_fetched_at))
    if change.after is not None:
        parts.append(_sentence_html("after", change.after, change.new_snapshot,
                                    change.new_fetched_at))
    diff = store.change_diff(change)
    if _has_edits(diff):
        marked = Markup(" ").join(_html_op(op, words) for op, words in diff)
        parts.append(Markup("<p>changed: {}</p>").format(marked))
    section = _section(change)
    if section:
        parts.append(Markup("<p>section: {}</p>").format(section))
    parts.append(Markup("<p>why: {}</p>").format(change.reason))
    if web_url and change.id:
        parts.append(Markup('<p>permalink: <a href="{0}">{0}</a></p>').format(
            f"{web_url}/changes/{change.id}"))
    return Markup("<div>{}</div>\n").format(Markup("\n").join(parts))


def _sentence_html(label: str, sentence: str, snapshot: str | None,
                   fetched_at: datetime | None) -> Markup:
    return Markup("<p>{} ({}):</p><blockquote>{}</blockquote>").format(
        label, _evidence(snapshot, fetched_at), sentence)


def render_digest(messages: Sequence[Message]) -> Message:
    """The alerts a digest channel held, oldest first, each as it would have gone out alone,
    under a subject naming the most severe."""
    first = min(messages, key=lambda m: _subject_severity(m.subject))
    subject = one_line(f"[DIGEST] {len(messages)} alerts · {first.subject}")
    text = "\n\n".join(f"=== {m.subject} ===\n\n{m.text.rstrip()}" for m in messages) + "\n"
    body = Markup("").join(Markup("<h2>{}</h2>\n{}\n").format(m.subject, Markup(m.body))
                           for m in messages)
    return Message(subject, text, str(body))


def _subject_severity(subject: str) -> int:
    """A subject's rank by the status its tag names ("[REMOVED] ..." first); health last."""
    return next((rank for rank, status in enumerate(SEVERITY)
                 if subject.startswith(f"[{tag(status)}]")), len(SEVERITY))


def _page(subject: str, body: Markup) -> Markup:
    return Markup("<html><head><title>{}</title></head><body>\n{}</body></html>").format(
        subject, body)


def _has_edits(diff: list[tuple[str, str]]) -> bool:
    return any(op != "=" for op, _ in diff) and any(op == "=" for op, _ in diff)


def _text_op(op: str, words: str) -> str:
    return {"-": f"[-{words}-]", "+": f"{{+{words}+}}"}.get(op, words)


def _html_op(op: str, words: str) -> Markup:
    tag = {"-": "del", "+": "ins"}.get(op)
    return Markup("<{0}>{1}</{0}>").format(Markup(tag), words) if tag else escape(words)


def _section(change: Change) -> str | None:
    before, after = change.section_before, change.section_after
    if before and after and before != after:
        return f"{before} -> {after}"
    return after or before


def _evidence(snapshot: str | None, fetched_at: datetime | None) -> str:
    short = f"snapshot {snapshot[:12]}" if snapshot else "no snapshot"
    return f"{short}, fetched {when(fetched_at)}" if fetched_at else short


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown time"


def citation(change: Change, source: Source | None, permalink: str,
             pages: tuple[int | None, int | None] = (None, None)) -> str:
    """One change as a reference to quote: the document, what became of which commitment, the
    two archived copies compared (full sha256, which anyone can check against the download,
    when each was fetched and, in a PDF, the page) and the permalink."""
    document = f'{source.company}, "{source.title}"' if source else change.source_id
    versions = [f"{side}: snapshot sha256 {sha}, fetched {when(fetched)}"
                + (f", page {page}." if page else ".")
                for side, sha, fetched, page in (
                    ("Before", change.old_snapshot, change.old_fetched_at, pages[0]),
                    ("After", change.new_snapshot, change.new_fetched_at, pages[1])) if sha]
    what = "commitment" if change.commitment_title else "commitment sentence"
    return " ".join([f'{document}, {change.url}: {what} "{change_title(change)}" '
                     f"{tag(change.status).lower()}.", *versions,
                     f"Recorded by Commitment Monitor, {permalink} (detected "
                     f"{when(change.detected_at)})."])
