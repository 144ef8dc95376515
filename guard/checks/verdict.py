"""What a check decides: a small frozen value, logged by entry id and score, never by content."""

from __future__ import annotations

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

    @property
    def entry_ids(self) -> list[str]:
        return sorted({m.entry_id for m in self.matches})

    @property
    def blocked(self) -> bool:
        return self.action in (Action.refuse, Action.filter)

    def summary(self) -> dict[str, object]:
        """The loggable form: entry ids, checks and scores only."""
        return {
            "action": self.action.value,
            "matches": [{"entry": m.entry_id, "check": m.check, "score": round(m.score, 4)} for m in self.matches],
        }


ALLOW = Verdict(Action.allow)
