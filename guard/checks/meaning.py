"""Multilingual meaning evidence: text that is not English, embedded by the multilingual model and searched among
the entries' sentences in its space (`guard.forget.meaning`). English text is left to the semantic check.

Kind "meaning" ("passage-meaning" for a passage's statements): the decision compares it with the policy's
`multilingual_*` thresholds (the two models' scores are on different scales). Its vectors are the `MEANING`
space's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from guard.checks.conversation import SPELLING_VIEWS, is_view
from guard.checks.evidence import MEANING, Evidence, Segment
from guard.checks.semantic import Found, Pieces, best_per_entry, found
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.language import english, language

MAX_PIECES = 8  # ~40 ms each on CPU: the most recent pieces of a long conversation only


class MeaningCheck:
    space = MEANING

    def __init__(self, pieces: Pieces) -> None:
        self.pieces = pieces

    def _pieces(self, segments: Sequence[Segment]) -> list[Segment]:
        chosen = [
            p
            for p in self.pieces(segments)
            if not is_view(p, SPELLING_VIEWS) and not english(p.text)  # respelled: nothing new to read
        ]
        return chosen[-MAX_PIECES:]

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return [p.text for p in self._pieces(segments)]

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()  # the first stage is MiniLM's (`guard.pipeline.cascade`): every text here is embedded whole

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Found]:
        if not view.multilingual:
            return []
        pieces = [p for p in self._pieces(segments) if p.text in vectors]
        if not pieces:
            return []
        queries = np.stack([vectors[p.text] for p in pieces])
        languages = [language(p.text) for p in pieces]
        return found(pieces, view.search_meaning(queries, languages))

    def evidence(self, readings: Sequence[list[Found]], view: IndexView) -> list[Evidence]:
        return best_per_entry(readings, "meaning", "passage-meaning", "qa-meaning")
