"""Compare two normalised versions of a document and judge what happened to each commitment.

CONTRACT (the engine itself is being written): pure, no I/O, no database.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["removed", "weakened", "not_found", "reworded", "moved", "added",
                 "strengthened", "restored"]
SEVERITY: tuple[Status, ...] = ("removed", "weakened", "not_found", "reworded", "moved",
                                "added", "strengthened", "restored")
"""Most severe first; an alert's subject starts with the most severe status it carries."""


class CommitmentLike(Protocol):
    id: str
    title: str
    quote: str


@dataclass(frozen=True)
class Finding:
    status: Status
    key: str                      # stable identity: the commitment id, or "s:" + hash of the sentence
    commitment_id: str | None     # None for a discovered sentence
    commitment_title: str | None
    before: str | None            # the whole sentence in the old version (None when added)
    after: str | None             # the whole sentence in the new version (None when removed)
    diff: tuple[tuple[str, str], ...]  # word-level: ("=", text) / ("-", text) / ("+", text)
    section_before: str | None    # heading trail, e.g. "Safeguards › Pausing"
    section_after: str | None
    reason: str                   # one line, e.g. 'modal downgrade: "will" -> "may"'


@dataclass(frozen=True)
class Detection:
    findings: tuple[Finding, ...]
    collapsed: str | None = None  # why the new text looks broken (a health event); then no findings


def detect(old: str | None, new: str, commitments: Sequence[CommitmentLike], *,
           discover: bool = False, removed_before: Collection[str] = ()) -> Detection:
    """old=None means a baseline: only configured quotes missing from ``new`` are reported
    (status "not_found"). ``removed_before`` holds sentences reported removed earlier, so their
    return is "restored" rather than "added"."""
    raise NotImplementedError
