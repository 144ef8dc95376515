"""Fact evidence: an entry's fact values (see `guard.forget.facts`) found in the segments; the score is how
many distinct values. Two or more in the conversation put it under watch for the entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView


class FactCheck:
    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def run(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        found: dict[str, tuple[set[str], str]] = {}
        for segment in segments:
            for entry_id, words in view.find_values(segment.text).items():
                found.setdefault(entry_id, (set(), segment.where))[0].update(words)
        return [Evidence(e, "fact", float(len(w)), where, frozenset(w)) for e, (w, where) in found.items()]
