"""Multilingual meaning evidence: text that is not English, embedded by the multilingual model and searched among
the entries' sentences in its space (`guard.forget.meaning`). English text is left to the semantic check.

Kind "meaning" ("passage-meaning" for a passage's statements): the decision compares it with the policy's
`multilingual_*` thresholds (the two models' scores are on different scales). Its vectors are keyed
`MEANING + text` in the request's vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from guard.checks.conversation import SPELLING_VIEWS, is_view
from guard.checks.evidence import Evidence, Segment
from guard.checks.semantic import Found, Pieces, best_per_entry, found
from guard.forget.embedder import Vectors
from guard.forget.view import IndexView
from guard.language import english, language

MEANING = "\x00meaning\x00"
MAX_PIECES = 8  # ~40 ms each on CPU: the most recent pieces of a long conversation only


class MeaningCheck:
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
        return []

    def embed_meaning(self, segments: Sequence[Segment]) -> list[str]:
        return [p.text for p in self._pieces(segments)]

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> list[Found]:
        if not view.multilingual:
            return []
        pieces = [p for p in self._pieces(segments) if MEANING + p.text in vectors]
        if not pieces:
            return []
        queries = np.stack([vectors[MEANING + p.text] for p in pieces])
        languages = [language(p.text) for p in pieces]
        return found(pieces, view.search_meaning(queries, languages))

    def evidence(self, readings: Sequence[list[Found]]) -> list[Evidence]:
        return best_per_entry(readings, "meaning", "passage-meaning")
