"""Name evidence: a forget entry's subject or an alias mentioned in a segment (see `guard.forget.names`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView


class NameCheck:
    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def run(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        found: dict[str, Evidence] = {}
        for segment in segments:
            for entry_id in view.find_names(segment.text):
                found.setdefault(entry_id, Evidence(entry_id, "lexical", 1.0, segment.where))
        return list(found.values())
