"""Semantic evidence: texts embedded and searched in the forget index; the best score per entry.

Text mostly in another script (Arabic, Cyrillic, CJK...) is left to the multilingual check: MiniLM reads it as
noise that is close to any other text of that script (`guard.language.other_script`).

No threshold here: the decision applies each entry's policy threshold. A passage's statements give kind "passage"
(judged on the statement scale, `guard.checks.conversation`). The evidence per text is bounded by the
index's top-k, so an unrelated text yields a handful of low scores, not a scan of the index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from guard.checks.conversation import PASSAGE, QA
from guard.checks.evidence import INDEX, Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.language import other_script

Pieces = Callable[[Sequence[Segment]], list[Segment]]


class Found(NamedTuple):
    """What one embedded piece found: the best score per entry among its top-k chunks. Keyed by the hash of the
    piece's text (no text is held), so that a sentence read in two messages counts once."""

    key: int
    where: str
    role: str
    scores: Mapping[str, float]


class SemanticCheck:
    space = INDEX

    def __init__(self, pieces: Pieces) -> None:
        self.pieces = pieces  # how the stage cuts its text into the pieces that are embedded

    def _pieces(self, segments: Sequence[Segment]) -> list[Segment]:
        return [p for p in self.pieces(segments) if not other_script(p.text)]

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return [p.text for p in self._pieces(segments)]

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        """Of the texts `embed` lists, those read only as a passage's statements."""
        roles: dict[str, set[bool]] = {}
        for p in self._pieces(segments):
            roles.setdefault(p.text, set()).add(p.role == PASSAGE)
        return {text for text, passage in roles.items() if passage == {True}}

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Found]:
        pieces = [p for p in self._pieces(segments) if p.text in vectors]
        if not pieces or not view.chunk_count:
            return []
        queries = np.stack([vectors[p.text] for p in pieces])
        return found(pieces, view.search(queries))

    def evidence(self, readings: Sequence[list[Found]], view: IndexView) -> list[Evidence]:
        return best_per_entry(readings, "semantic", "passage", "qa")


def found(pieces: Sequence[Segment], scores: Sequence[Mapping[str, float]]) -> list[Found]:
    return [Found(hash(p.text), p.where, p.role, s) for p, s in zip(pieces, scores, strict=True) if s]


def best_per_entry(readings: Sequence[Sequence[Found]], kind: str, passage_kind: str, qa_kind: str) -> list[Evidence]:
    """Per entry, the best-scoring piece; a passage's statements apart, with their second-best score, and an answer
    read with its question apart. A piece read twice (the same sentence in two messages) counts once, where it
    was read first."""
    kinds = {PASSAGE: passage_kind, QA: qa_kind}
    best: dict[tuple[str, str], Evidence] = {}
    seen: set[int] = set()
    for piece in (p for reading in readings for p in reading):
        if piece.key in seen:
            continue
        seen.add(piece.key)
        k = kinds.get(piece.role, kind)
        for entry_id, score in piece.scores.items():
            was = best.get((entry_id, k))
            if was is None:
                best[entry_id, k] = Evidence(entry_id, k, score, piece.where)
            elif score > was.score:
                best[entry_id, k] = Evidence(entry_id, k, score, piece.where, second=was.score)
            elif score > was.second:
                best[entry_id, k] = Evidence(entry_id, k, was.score, was.where, second=score)
    return list(best.values())
