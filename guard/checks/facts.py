"""Fact evidence: an entry's fact values (see `guard.forget.facts`) found in the segments. The score is how many
of them are rare (numbers, words outside the 5,000 most frequent): two rare values of one entry in a conversation
put it under watch for the entry; in a watched answer every value counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.facts import rare
from guard.forget.view import IndexView


class FactCheck:
    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def run(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        found: dict[str, tuple[set[str], str]] = {}
        for segment in segments:
            for entry_id, words in view.find_values(segment.text).items():
                found.setdefault(entry_id, (set(), segment.where))[0].update(words)
        return [Evidence(e, "fact", float(len(rare(w))), where, frozenset(w)) for e, (w, where) in found.items()]
