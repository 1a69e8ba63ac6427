"""The watchlist: what a user edits (YAML) turned into frozen, validated objects.

Every mistake is reported as ``watchlist.yaml:LINE: what is wrong; what to do``, all of them at
once, and unknown keys are errors: a typo must never silently switch a check off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import soupsieve
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.errors import Problem, WatchlistError

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BUNDLED_WATCHLIST = Path(__file__).resolve().parent.parent / "seeds" / "ai-labs.yaml"


def parse_duration(value: Any) -> timedelta:
    """'90s', '30m', '6h', '1d', '2w' (or a number of seconds) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(
                f"bad duration {value!r}; write a number and a unit, e.g. 30m, 6h, 1d"
            )
        seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return timedelta(seconds=seconds)


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

    _durations = field_validator("every", "host_gap", "timeout", mode="before")(parse_duration)


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

    _durations = field_validator("every", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad URL {value!r}; write a full http:// or https:// address")
        return value

    @field_validator("select", "follow")
    @classmethod
    def _css_selector(cls, value: str | None) -> str | None:
        if value is not None:
            check_selector(value)
        return value

    @field_validator("drop")
    @classmethod
    def _css_selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for selector in value:
            check_selector(selector)
        return value


class Watchlist(Strict):
    defaults: Defaults = Defaults()
    channels: dict[str, tuple[str, ...]] = {}
    sources: tuple[Source, ...] = ()
    path: str = "watchlist.yaml"

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)

    def interval(self, source: Source) -> timedelta:
        return source.every or self.defaults.every

    def channels_for(self, source: Source) -> tuple[str, ...]:
        return source.notify if source.notify is not None else self.defaults.notify

    def respects_robots(self, source: Source) -> bool:
        return source.robots if source.robots is not None else self.defaults.robots


def check_selector(selector: str) -> None:
    try:
        soupsieve.compile(selector)
    except Exception as exc:  # soupsieve raises SelectorSyntaxError and friends
        raise ValueError(f"invalid CSS selector {selector!r} ({exc.__class__.__name__}); "
                         "fix the selector syntax") from None


def expand_vars(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${NAME} with its value from the environment. Raises KeyError for undefined names."""
    env = os.environ if environ is None else environ
    return VAR.sub(lambda m: env[m.group(1)], text)


def default_path() -> Path:
    """config/watchlist.yaml when it exists, else the bundled AI-lab watchlist in seeds/."""
    configured = os.environ.get("MONITOR_WATCHLIST")
    if configured:
        return Path(configured)
    user = Path("config/watchlist.yaml")
    return user if user.exists() else BUNDLED_WATCHLIST


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Watchlist:
    """Read and validate a watchlist file; raise WatchlistError listing every problem."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WatchlistError([Problem(str(path), 0, f"cannot read file ({exc.strerror}); "
                                      "check the path or set MONITOR_WATCHLIST")]) from None
    except UnicodeDecodeError:
        raise WatchlistError([Problem(name, 0, "file is not UTF-8 text; save it as UTF-8")]) from None
    return parse(text, name=name, environ=environ)


def parse(text: str, *, name: str = "watchlist.yaml",
          environ: Mapping[str, str] | None = None) -> Watchlist:
    env = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise WatchlistError([Problem(name, line, f"YAML syntax error: {problem}; "
                                      "check indentation and quoting")]) from None
    if node is None:
        raise WatchlistError([Problem(name, 1, "the file is empty; add a 'sources:' list")])
    lines: dict[tuple[Any, ...], int] = {}
    problems: list[Problem] = []
    data = _plain(node, (), lines, problems, name)
    if not isinstance(data, dict):
        raise WatchlistError([Problem(name, 1, "the top level must be a mapping with "
                                      "'defaults', 'channels' and 'sources'")])
    problems += _check_vars(data, lines, name, env)
    try:
        watchlist = Watchlist.model_validate({**data, "path": name})
    except ValidationError as exc:
        problems += [_problem(err, lines, name) for err in exc.errors()]
        watchlist = None
    if watchlist is not None:
        problems += _check_references(watchlist, lines, name)
    if problems:
        raise WatchlistError(sorted(problems, key=lambda p: p.line))
    assert watchlist is not None
    return watchlist


def _plain(node: yaml.Node, loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
           problems: list[Problem], name: str) -> Any:
    """Build plain data from a YAML node tree, remembering the line of every key and item."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                problems.append(Problem(name, key_node.start_mark.line + 1,
                                        f"duplicate key {key!r}; keep only one"))
            result[key] = _plain(value_node, (*loc, key), lines, problems, name)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*loc, i), lines, problems, name) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """A YAML scalar as Python (int, bool, str, ...), with the safe loader's type rules."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _line(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc, 1)


def _problem(err: Any, lines: dict[tuple[Any, ...], int], name: str) -> Problem:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key {loc[-1]!r}; allowed here: {', '.join(allowed)}"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}; add it"
    elif kind == "string_pattern_mismatch":
        message = (f"{where}: {err['input']!r} is not a valid id; use lower-case letters, "
                   "digits, '-', '_' or '.'")
    else:
        text = err["msg"].removeprefix("Value error, ")
        message = f"{where}: {text}"
    return Problem(name, _line(loc, lines), message)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Watchlist
    for part in loc:
        if part == "defaults":
            model = Defaults
        elif part == "sources":
            model = Source
        elif part == "commitments":
            model = Commitment
    return [k for k in model.model_fields if k != "path"]


def _check_vars(data: dict[str, Any], lines: dict[tuple[Any, ...], int], name: str,
                env: Mapping[str, str]) -> list[Problem]:
    problems = []
    channels = data.get("channels")
    if not isinstance(channels, dict):
        return []
    for channel, urls in channels.items():
        for i, url in enumerate(urls if isinstance(urls, list) else []):
            for var in VAR.findall(str(url)):
                if var not in env:
                    problems.append(Problem(name, _line(("channels", channel, i), lines),
                                            f"channel {channel!r} uses ${{{var}}}, which is not "
                                            f"set; export {var} in the environment or .env"))
    return problems


def _check_references(watchlist: Watchlist, lines: dict[tuple[Any, ...], int],
                      name: str) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for i, source in enumerate(watchlist.sources):
        if source.id in seen:
            problems.append(Problem(name, _line(("sources", i, "id"), lines),
                                    f"duplicate source id {source.id!r}; ids must be unique"))
        seen.add(source.id)
        ids: set[str] = set()
        for j, commitment in enumerate(source.commitments):
            if commitment.id in ids:
                problems.append(Problem(name, _line(("sources", i, "commitments", j, "id"), lines),
                                        f"duplicate commitment id {commitment.id!r} in source "
                                        f"{source.id!r}; ids must be unique per source"))
            ids.add(commitment.id)
        for channel in watchlist.channels_for(source):
            if channel not in watchlist.channels:
                loc = ("sources", i, "notify") if source.notify is not None else ("defaults",
                                                                                   "notify")
                problems.append(Problem(name, _line(loc, lines),
                                        f"unknown channel {channel!r}; define it under "
                                        f"'channels:' (known: {', '.join(watchlist.channels) or 'none'})"))
    for channel in watchlist.channels:
        if not watchlist.channels[channel]:
            problems.append(Problem(name, _line(("channels", channel), lines),
                                    f"channel {channel!r} has no URLs; add at least one apprise URL"))
    return problems
