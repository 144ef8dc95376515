"""Verbatim evidence: runs of n words shared between a segment and an entry's documents (see
`guard.forget.ngrams`); the score is how many of the segment's runs the entry holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView


class VerbatimCheck:
    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def run(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Evidence]:
        best: dict[str, Evidence] = {}
        for segment in segments:
            for entry_id, count in view.find_verbatim(segment.text).items():
                if entry_id not in best or count > best[entry_id].score:
                    best[entry_id] = Evidence(entry_id, "verbatim", float(count), segment.where)
        return list(best.values())
