"""Verbatim evidence: runs of n words shared between a segment and an entry's documents (see
`guard.forget.ngrams`); the score is how many of the segment's runs the entry holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.checks.conversation import lexical
from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView


class VerbatimCheck:
    space = None  # embeds nothing

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(
        self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]
    ) -> dict[str, tuple[int, str]]:
        best: dict[str, tuple[int, str]] = {}
        for segment in lexical(segments):
            for entry_id, count in view.find_verbatim(segment.text).items():
                if entry_id not in best or count > best[entry_id][0]:
                    best[entry_id] = (count, segment.where)
        return best

    def evidence(self, readings: Sequence[dict[str, tuple[int, str]]], view: IndexView) -> list[Evidence]:
        best: dict[str, tuple[int, str]] = {}
        for reading in readings:
            for entry_id, (count, where) in reading.items():
                if entry_id not in best or count > best[entry_id][0]:
                    best[entry_id] = (count, where)
        return [Evidence(e, "verbatim", float(count), where) for e, (count, where) in best.items()]
