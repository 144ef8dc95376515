"""Name evidence: a forget entry's subject or an alias mentioned in a segment (see `guard.forget.names`), and
the weaker evidence of a part of a name mentioned alone (a surname)."""

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
        parts: dict[str, tuple[set[str], str]] = {}
        for segment in segments:
            for entry_id in view.find_names(segment.text):
                found.setdefault(entry_id, Evidence(entry_id, "lexical", 1.0, segment.where))
            for entry_id, words in view.find_parts(segment.text).items():
                parts.setdefault(entry_id, (set(), segment.where))[0].update(words)
        out = list(found.values())
        out += [Evidence(e, "part", float(len(w)), where, frozenset(w)) for e, (w, where) in parts.items()]
        return out
