"""What flows out of the checks and what a policy makes of it — small frozen values, logged by entry id,
kind, score and place, never by content.

A check turns text into `Evidence` per forget entry; `guard.checks.decide` turns the evidence of one stage
into a `Verdict` (one action, and the evidence that counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from guard.forget.embedder import Vectors
from guard.forget.view import IndexView


class Action(StrEnum):
    allow = "allow"
    rewrite = "rewrite"
    refuse = "refuse"
    filter = "filter"


@dataclass(frozen=True)
class Segment:
    """A piece of text a check reads, and where it comes from ("messages[2]", "window", "output")."""

    where: str
    text: str


@dataclass(frozen=True)
class Evidence:
    entry_id: str
    kind: str  # "semantic" | "lexical" (a name) | "verbatim"
    score: float  # cosine similarity; 1.0 for a name mention; shared n-gram count for verbatim
    where: str = ""  # the segment it was found in


class Check(Protocol):
    """One kind of evidence. `embed` names the texts it needs vectors for (embedded in one batch by the caller,
    off the index's thread); `run` reads the index on the index's reader thread."""

    def embed(self, segments: Sequence[Segment]) -> list[str]: ...
    def run(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]: ...


@dataclass(frozen=True)
class Verdict:
    action: Action
    matches: tuple[Evidence, ...] = field(default=())
    # evidence for entries in monitor mode: recorded, never enforced (it does not count towards `action`)
    monitored: tuple[Evidence, ...] = field(default=())
    # the check itself failed (embedder or index error); `action` is what the global on_error made of it
    failed: bool = False

    @property
    def entry_ids(self) -> list[str]:
        return sorted({m.entry_id for m in self.matches})

    @property
    def blocked(self) -> bool:
        return self.action in (Action.refuse, Action.filter)

    def summary(self) -> dict[str, object]:
        """The loggable form: entry ids, kinds, scores and places only."""
        out: dict[str, object] = {"action": self.action.value, "matches": _loggable(self.matches)}
        if self.monitored:
            out["monitored"] = _loggable(self.monitored)
        if self.failed:
            out["failed"] = True
        return out


def _loggable(evidence: tuple[Evidence, ...]) -> list[dict[str, object]]:
    return [{"entry": e.entry_id, "check": e.kind, "score": round(e.score, 4), "where": e.where} for e in evidence]


ALLOW = Verdict(Action.allow)
