"""What a check decides: a small frozen value, logged by entry id and score, never by content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    allow = "allow"
    rewrite = "rewrite"
    refuse = "refuse"
    filter = "filter"


@dataclass(frozen=True)
class Match:
    entry_id: str
    check: str  # "semantic" | "lexical" | "verbatim"
    score: float  # cosine similarity, 1.0 for a name mention, shared n-gram count for verbatim


@dataclass(frozen=True)
class Verdict:
    action: Action
    matches: tuple[Match, ...] = field(default=())
    # matches of entries in monitor mode: recorded, never enforced (they do not count towards `action`)
    monitored: tuple[Match, ...] = field(default=())
    # the check itself failed (embedder or index error); `action` is what the policy's on_error made of it
    failed: bool = False

    @property
    def entry_ids(self) -> list[str]:
        return sorted({m.entry_id for m in self.matches})

    @property
    def blocked(self) -> bool:
        return self.action in (Action.refuse, Action.filter)

    def summary(self) -> dict[str, object]:
        """The loggable form: entry ids, checks and scores only."""
        out: dict[str, object] = {"action": self.action.value, "matches": _matches(self.matches)}
        if self.monitored:
            out["monitored"] = _matches(self.monitored)
        if self.failed:
            out["failed"] = True
        return out


def _matches(matches: tuple[Match, ...]) -> list[dict[str, object]]:
    return [{"entry": m.entry_id, "check": m.check, "score": round(m.score, 4)} for m in matches]


def split(matches: dict[tuple[str, str], Match], monitored: Callable[[str], bool]) -> tuple[tuple[Match, ...], ...]:
    """(enforced, monitored) matches, each in a stable order."""
    ordered = sorted(matches.values(), key=lambda m: (m.entry_id, m.check))
    return tuple(m for m in ordered if not monitored(m.entry_id)), tuple(m for m in ordered if monitored(m.entry_id))


ALLOW = Verdict(Action.allow)
