"""The watchlist: what a user edits (YAML) turned into frozen, validated objects.

Every mistake is reported as ``watchlist.yaml:LINE: what is wrong; what to do``, all of them at
once, and unknown keys are errors: a typo must never silently switch a check off.

``${NAME}`` in channel URLs is only checked for presence here; its value is read when an alert
is sent (``expand_vars``) and never appears in a message, a log line or a stored row.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from cssselect import SelectorError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from monitor.errors import Problem, WatchlistError
from monitor.normalise.html import css

logger = logging.getLogger(__name__)

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BUNDLED_WATCHLIST = Path(__file__).resolve().parent.parent / "seeds" / "ai-labs.yaml"
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it: the same nodes and line marks for a third of the CPU
(5.8 s -> 1.95 s for 5,000 sources, bench/README.md)."""

Loc = tuple[Any, ...]


def parse_duration(value: Any) -> timedelta:
    """'90s', '30m', '6h', '1d', '2w' (or a number of seconds) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(f"bad duration {value!r}; write a number and a unit, e.g. 30m, 6h, 1d")
        seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive; e.g. 30m, 6h, 1d")
    return timedelta(seconds=seconds)


def _optional_duration(value: Any) -> timedelta | None:
    return None if value is None else parse_duration(value)


CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock_time(value: Any) -> time | None:
    """'08:00' -> 08:00 UTC. YAML reads an unquoted 9:30 as the number 570 (base 60): say so."""
    if value is None or isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{value} is not a time of day; quote it, e.g. digest: '09:30'")
    if not (match := CLOCK_TIME.match(str(value).strip())):
        raise ValueError(f"bad time of day {value!r}; write HH:MM in UTC, e.g. '08:00'")
    return time(int(match.group(1)), int(match.group(2)), tzinfo=UTC)


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"bad URL {value!r}; write a full http:// or https:// address")
    return value


def _optional_web_address(value: str | None) -> str | None:
    """A web address without its trailing slash, to append paths to."""
    return None if value is None else check_http_url(value).rstrip("/")


def check_selector(selector: str) -> str:
    """Compile a CSS selector the way the normaliser will, so a typo (or a selector cssselect
    cannot read, such as ``p::before``) fails at load time."""
    try:
        css(selector)
    except SelectorError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"invalid CSS selector {selector!r} ({reason}); fix the selector "
                         "syntax") from None
    return selector


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Commitment(Strict):
    """A sentence the user wants tracked. ``quote`` may be abridged with '...'."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    quote: str = Field(min_length=8)


class Defaults(Strict):
    every: timedelta = timedelta(hours=6)
    notify: tuple[str, ...] = ()
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    """Fraction of the interval by which each run is randomly shifted."""
    failures_before_alert: int = Field(default=3, ge=1)
    host_gap: timedelta = timedelta(seconds=1)
    """Minimum pause between two requests to the same host."""
    timeout: timedelta = timedelta(seconds=30)
    max_bytes: int = Field(default=20_000_000, ge=1024)
    allow_private: bool = True
    """False refuses loopback, link-local and private addresses (for shared watchlists)."""
    robots: bool = False
    keep_checks: timedelta | None = timedelta(days=30)
    """Every check is kept this long; older quiet ones are thinned (store.thin_checks). None
    keeps them all."""
    web_url: str | None = None
    """Where the web view (`serve`) is published: alerts then link each change's permalink."""

    _durations = field_validator("every", "host_gap", "timeout", mode="before")(parse_duration)
    _keep_checks = field_validator("keep_checks", mode="before")(_optional_duration)
    _web_url = field_validator("web_url")(_optional_web_address)


class Source(Strict):
    id: str = Field(pattern=ID_PATTERN)
    company: str = Field(min_length=1)
    title: str = Field(min_length=1)
    url: str
    select: str | None = None
    drop: tuple[str, ...] = ()
    follow: str | None = None
    """CSS selector of a link on the page at ``url``; the linked document is tracked."""
    fetch: Literal["http", "browser"] = "http"
    every: timedelta | None = None
    notify: tuple[str, ...] | None = None
    robots: bool | None = None
    commitments: tuple[Commitment, ...] = ()
    discover: bool = False

    _every = field_validator("every", mode="before")(_optional_duration)

    _url = field_validator("url")(check_http_url)

    @field_validator("select", "follow")
    @classmethod
    def _css_selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @field_validator("drop")
    @classmethod
    def _css_selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_selector(selector) for selector in value)


AlertKind = Literal["removed", "weakened", "not_found", "reworded", "moved", "added",
                    "strengthened", "restored", "failing", "recovered", "new_version"]
"""What a channel may ask for: a change's status, or a source-health alert's kind."""


class Channel(Strict):
    """A channel's apprise URLs, and the alerts sent to them: every alert, unless ``only`` names
    the kinds wanted (a newsroom's Slack may want weakened and removed commitments alone), at
    once, unless ``digest`` holds them for one message a day at that time (UTC)."""

    urls: tuple[str, ...]
    only: frozenset[AlertKind] | None = None
    digest: time | None = None

    _digest = field_validator("digest", mode="before")(parse_clock_time)

    def send_at(self, moment: datetime) -> datetime:
        """When an alert stored at ``moment`` goes out: at once, or at the next digest time."""
        if self.digest is None:
            return moment
        due = datetime.combine(moment.astimezone(UTC).date(), self.digest)
        return due if due > moment else due + timedelta(days=1)

    def wants(self, kinds: Collection[str]) -> bool:
        """Whether an alert of these kinds (its changes' statuses, or its health kind) goes here."""
        return self.only is None or not self.only.isdisjoint(kinds)

    def shows(self, status: str) -> bool:
        return self.only is None or status in self.only


class Watchlist(Strict):
    defaults: Defaults = Defaults()
    channels: dict[str, Channel] = {}
    sources: tuple[Source, ...] = ()
    _path: str = PrivateAttr(default="watchlist.yaml")

    @field_validator("channels", mode="before")
    @classmethod
    def _url_lists(cls, value: Any) -> Any:
        """A channel written as a list of URLs (the usual form) is sent every alert."""
        if not isinstance(value, Mapping):
            return value
        return {name: {"urls": urls} if urls is None or isinstance(urls, list | tuple) else urls
                for name, urls in value.items()}

    @property
    def path(self) -> str:
        """Where it was read from, for messages (set by the loader; not a key users write)."""
        return self._path

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    def interval(self, source: Source) -> timedelta:
        return source.every or self.defaults.every

    def channels_for(self, source: Source) -> tuple[str, ...]:
        return source.notify if source.notify is not None else self.defaults.notify


def expand_vars(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${NAME} with its value from the environment. Raises KeyError for undefined names."""
    env = os.environ if environ is None else environ
    return VAR.sub(lambda m: env[m.group(1)], text)


def default_path() -> Path:
    """$MONITOR_WATCHLIST, else config/watchlist.yaml when it exists, else the bundled seeds."""
    configured = os.environ.get("MONITOR_WATCHLIST")
    if configured:
        return Path(configured)
    user = Path("config/watchlist.yaml")
    return user if user.exists() else BUNDLED_WATCHLIST


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Watchlist:
    """Read and validate a watchlist file; raise WatchlistError listing every problem."""
    return parse(read(path), name=str(path), environ=environ)


class WatchlistFile:
    """A watchlist file followed across edits, for the long-running commands (``run``, ``serve``).

    ``load()`` reads it once (WatchlistError when broken); ``reload()`` re-reads it when its mtime
    or size moved and its content changed. A broken edit is logged, problem by problem, once per
    distinct content, and the last good watchlist stays in use: a typo saved in an editor must
    never stop the monitor or blank the web view."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.watchlist: Watchlist | None = None
        self._lock = threading.Lock()  # one reader at a time: jobs, and web requests in threads
        self._stamp: tuple[int, int] | None = None
        self._digest: str | None = None

    def load(self) -> Watchlist:
        with self._lock:
            self._stamp = self._file_stamp()
            text = read(self.path)
            self._digest = _digest(text)
            self.watchlist = parse(text, name=str(self.path))
            return self.watchlist

    def reload(self) -> Watchlist | None:
        """The edited watchlist when the file changed and is valid; None otherwise."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                text = read(self.path)
            except WatchlistError as exc:
                _log_rejected(exc)
                self._digest = None
                return None
            digest = _digest(text)
            if digest == self._digest:
                return None
            self._digest = digest
            try:
                self.watchlist = parse(text, name=str(self.path))
            except WatchlistError as exc:
                _log_rejected(exc)
                return None
            return self.watchlist

    def current(self) -> Watchlist:
        """The watchlist as the file says now (the last good one while an edit is broken)."""
        self.reload()
        if self.watchlist is None:
            raise RuntimeError("WatchlistFile.current() before load()")
        return self.watchlist

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _log_rejected(exc: WatchlistError) -> None:
    logger.error("watchlist edit rejected, still running the last good one (%d problems):",
                 len(exc.problems))
    for problem in exc.problems:
        logger.error("  %s", problem)


def read(path: Path | str) -> str:
    """The file's text, or a WatchlistError that says why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), 0, f"cannot read the file ({exc.strerror}); check the "
                          "path, or set --watchlist / MONITOR_WATCHLIST")
    except UnicodeDecodeError:
        problem = Problem(str(path), 0, "the file is not UTF-8 text; save it as UTF-8")
    raise WatchlistError([problem])


def parse(text: str, *, name: str = "watchlist.yaml",
          environ: Mapping[str, str] | None = None) -> Watchlist:
    """Validate YAML text. Every check runs on the raw data, so one run lists every problem."""
    env = os.environ if environ is None else environ
    reader = _Reader(name)
    data = reader.plain(_compose(text, name), ())
    if not isinstance(data, dict):
        raise WatchlistError([Problem(name, 1, "the top level must be a mapping with "
                                      "'defaults', 'channels' and 'sources'")])
    problems = [*reader.problems, *_check_vars(data, reader.lines, name, env),
                *_check_channel_urls(data, reader.lines, name),
                *_check_references(data, reader.lines, name)]
    watchlist = None
    try:
        watchlist = Watchlist.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, data, reader.lines, name) for err in exc.errors()]
    if problems or watchlist is None:
        raise WatchlistError(sorted(set(problems), key=lambda p: (p.line, p.message)))
    watchlist._path = name
    return watchlist


# --- YAML with line numbers ---------------------------------------------------------------------


def _compose(text: str, name: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=COMPOSER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        # Only the parser's own words: str(exc) quotes the offending line, which may hold a secret.
        problem = getattr(exc, "problem", None) or "unreadable YAML"
        raise WatchlistError([Problem(name, line, f"YAML syntax error: {problem}; check "
                                      "indentation, colons and quoting")]) from None
    if node is None:
        raise WatchlistError([Problem(name, 1, "the file is empty; add a 'sources:' list")])
    return node


STR_TAG = "tag:yaml.org,2002:str"


class _Reader:
    """Turns a YAML node tree into plain data, remembering the line of every key and item, and
    noting duplicate keys (which PyYAML would silently resolve to the last one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self._open: set[int] = set()  # collection nodes being expanded, to stop alias loops

    def plain(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if not isinstance(node, yaml.CollectionNode):
            return self._scalar(node)
        if id(node) in self._open:  # an alias inside its own anchor: `a: &x [*x]`
            self._add(node.start_mark.line + 1, "an anchor contains an alias of itself; "
                      "remove the '*' reference to its own '&' anchor")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            return [self.plain(item, (*loc, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.append(value_node)
                continue
            key = self._scalar(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool):
                self._add(line, "a key must be plain text; write 'name: value'")
                continue
            if key in result:
                self._add(line, f"duplicate key {key!r}; keep only one")
            self.lines.setdefault((*loc, key), line)
            result[key] = self.plain(value_node, (*loc, key))
        for value_node in merged:  # `<<: *anchor`: explicit keys win over merged ones
            nodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for other in nodes:
                extra = self.plain(other, loc)
                if isinstance(extra, dict):
                    result = {**extra, **result}
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == STR_TAG:  # most scalars: their text is their value (5x faster)
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            self._add(node.start_mark.line + 1, f"unsupported YAML value or tag {node.tag!r}; "
                      "write plain text, numbers, lists and mappings")
            return None

    def _add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.name, line, message))


def _line(loc: Loc, lines: Mapping[Loc, int]) -> int:
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc, 1)


# --- Schema errors -------------------------------------------------------------------------------

HINTS = {
    "string_type": "write it as text",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "tuple_type": "write a list, e.g. [a, b] or one '- item' per line",
    "list_type": "write a list, e.g. [a, b] or one '- item' per line",
    "string_too_short": "fill it in",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "literal_error": "use one of the values listed",
}


def _problem(err: Mapping[str, Any], data: Mapping[str, Any], lines: Mapping[Loc, int],
             name: str) -> Problem:
    loc = tuple(err["loc"])
    if loc[:1] == ("channels",) and loc[2:3] == ("urls",) \
            and isinstance(_child(data.get("channels"), loc[1]), list):
        loc = (*loc[:2], *loc[3:])  # a channel written as a plain list of URLs
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        guess = _did_you_mean(loc[-1], allowed)
        message = (f"{_where(loc[:-1], data)}unknown key {loc[-1]!r}{guess}; allowed here: "
                   f"{', '.join(allowed)}")
    elif kind in ("model_type", "dict_type"):
        message = (f"{_where(loc, data)}expected 'key: value' lines here, not "
                   f"{_describe(err['input'])}; indent the keys under it")
    elif kind == "missing":
        message = f"{_where(loc[:-1], data)}missing required key {loc[-1]!r}; add it"
    elif kind == "string_pattern_mismatch":
        message = (f"{_where(loc, data)}{err['input']!r} is not a valid id; use lower-case "
                   "letters, digits, '-', '_' or '.', starting with a letter or digit")
    elif kind == "value_error":  # our validators already say what to do
        message = f"{_where(loc, data)}{err['msg'].removeprefix('Value error, ')}"
    else:
        hint = HINTS.get(kind, "fix the value")
        message = f"{_where(loc, data)}{err['msg']}; {hint}"
    return Problem(name, _line(loc, lines), message)


def _where(loc: Loc, data: Mapping[str, Any]) -> str:
    """"source 'openai' commitment 'no-military' quote: " - the path a user recognises."""
    words: list[str] = []
    node: Any = data
    for i, part in enumerate(loc):
        node = _child(node, part)
        parent = loc[i - 1] if i else None
        if isinstance(part, int) and parent in ("sources", "commitments"):
            kind = "source" if parent == "sources" else "commitment"
            ident = node.get("id") if isinstance(node, dict) else None
            words[-1] = f"{kind} {ident!r}" if isinstance(ident, str) else f"{kind} #{part + 1}"
        elif isinstance(part, int):
            words[-1] += f"[{part}]"
        elif words and not words[-1].startswith(("source ", "commitment ")):
            words[-1] += f".{part}"
        else:
            words.append(str(part))
    return (" ".join(words) + ": ") if words else ""


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "an empty value"
    kind = "text" if isinstance(value, str) else type(value).__name__
    return f"{kind} {value!r}"[:60]


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _allowed_keys(loc: Loc) -> list[str]:
    model: type[BaseModel] = Watchlist
    for part in loc:
        if part == "defaults":
            model = Defaults
        elif part == "channels":
            model = Channel
        elif part == "sources":
            model = Source
        elif part == "commitments":
            model = Commitment
    return list(model.model_fields)


# --- Cross-references, checked on the raw data so they show up next to schema errors -------------


def _mappings(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict):
            yield i, item


def _check_references(data: Mapping[str, Any], lines: Mapping[Loc, int],
                      name: str) -> list[Problem]:
    problems: list[Problem] = []
    channels = data.get("channels")
    known = set(channels) if isinstance(channels, dict) else set()
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        problems += _unknown_channels(defaults.get("notify"), ("defaults", "notify"), known,
                                      lines, name)
    first_line: dict[str, int] = {}
    for i, source in _mappings(data.get("sources")):
        source_id = source.get("id")
        if isinstance(source_id, str):
            line = _line(("sources", i, "id"), lines)
            if source_id in first_line:
                problems.append(Problem(name, line, f"duplicate source id {source_id!r} (first "
                                        f"at line {first_line[source_id]}); ids must be unique"))
            first_line.setdefault(source_id, line)
        problems += _duplicate_commitments(source, ("sources", i), lines, name)
        problems += _unknown_channels(source.get("notify"), ("sources", i, "notify"), known,
                                      lines, name)
    for channel, value in (channels.items() if isinstance(channels, dict) else ()):
        if (value.get("urls", ...) if isinstance(value, dict) else value) in (None, []):
            problems.append(Problem(name, _line(("channels", channel), lines), f"channel "
                                    f"{channel!r} has no URLs; add at least one apprise URL"))
    return problems


def _duplicate_commitments(source: Mapping[str, Any], loc: Loc, lines: Mapping[Loc, int],
                           name: str) -> list[Problem]:
    problems = []
    first_line: dict[str, int] = {}
    for j, commitment in _mappings(source.get("commitments")):
        commitment_id = commitment.get("id")
        if not isinstance(commitment_id, str):
            continue
        line = _line((*loc, "commitments", j, "id"), lines)
        if commitment_id in first_line:
            problems.append(Problem(name, line, f"duplicate commitment id {commitment_id!r} in "
                                    f"source {source.get('id')!r} (first at line "
                                    f"{first_line[commitment_id]}); ids must be unique per source"))
        first_line.setdefault(commitment_id, line)
    return problems


def _unknown_channels(notify: Any, loc: Loc, known: set[str], lines: Mapping[Loc, int],
                      name: str) -> list[Problem]:
    names = notify if isinstance(notify, list) else []
    listed = ", ".join(sorted(known)) or "none"
    return [Problem(name, _line((*loc, i), lines), f"unknown channel {channel!r}"
                    f"{_did_you_mean(channel, known)}; define it under 'channels:' or fix the "
                    f"name (defined: {listed})")
            for i, channel in enumerate(names)
            if isinstance(channel, str) and channel not in known]


def _channel_urls(data: Mapping[str, Any]) -> Iterator[tuple[str, int, Loc, str]]:
    """(channel, index, where, url) of each URL, written as a list or under a channel's 'urls'."""
    channels = data.get("channels")
    for channel, value in (channels.items() if isinstance(channels, dict) else ()):
        mapping = isinstance(value, dict)
        loc: Loc = ("channels", channel, "urls") if mapping else ("channels", channel)
        urls = value.get("urls") if mapping else value
        for i, url in enumerate(urls if isinstance(urls, list) else []):
            if isinstance(url, str):
                yield channel, i, (*loc, i), url


def _check_vars(data: Mapping[str, Any], lines: Mapping[Loc, int], name: str,
                env: Mapping[str, str]) -> list[Problem]:
    return [Problem(name, _line(loc, lines),
                    f"channel {channel!r} uses ${{{var}}}, which is not set; export {var} in the "
                    "environment (or .env) before starting the monitor")
            for channel, _, loc, url in _channel_urls(data)
            for var in dict.fromkeys(VAR.findall(url))
            if var not in env]


COMMON_SCHEMES = frozenset({
    "apprise", "apprises", "discord", "form", "forms", "gchat", "json", "jsons", "mailto",
    "mailtos", "matrix", "matrixs", "mmost", "mmosts", "ntfy", "ntfys", "opsgenie", "pagerduty",
    "pover", "rocket", "rockets", "ses", "signal", "signals", "slack", "sns", "tgram", "twilio",
    "webex", "workflow", "workflows", "xml", "xmls", "zulip"})
"""Schemes apprise knows (a test checks it against apprise's own list): a watchlist that uses
only these is checked without loading apprise's ~260 plugins, 0.3-0.5 s on every command."""


def _check_channel_urls(data: Mapping[str, Any], lines: Mapping[Loc, int],
                        name: str) -> list[Problem]:
    """A URL apprise has no plugin for would fail at the first alert; say so now. Only the
    scheme is named in the message: the rest of the URL may hold credentials."""
    schemes = [(channel, i, loc, _scheme(url)) for channel, i, loc, url in _channel_urls(data)]
    if all(scheme in COMMON_SCHEMES for *_, scheme in schemes):
        return []
    from apprise import NotificationManager  # imported here: it loads ~260 plugins

    known = set(NotificationManager().schemas())
    problems = []
    for channel, i, loc, scheme in schemes:
        if scheme not in known:
            shown = f"scheme {scheme!r}" if scheme else "no 'scheme://'"
            problems.append(Problem(name, _line(loc, lines),
                                    f"channel {channel!r} URL #{i + 1} has {shown}, which apprise "
                                    "does not know; write an apprise URL such as mailtos://... or "
                                    "slack://... (see apprise's wiki)"))
    return problems


def _scheme(url: str) -> str:
    """"mailtos" of "mailtos://...", lower-cased; "" when the URL has none."""
    return url.partition("://")[0].lower() if "://" in url else ""
