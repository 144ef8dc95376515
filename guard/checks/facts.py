"""Fact evidence: an entry's fact values (see `guard.forget.facts`) found in the segments. The score is how many
of them are rare (numbers, words outside the 5,000 most frequent): two rare values of one entry in a conversation
put it under watch for the entry; in a watched answer every value counts.

In a passage (`guard.checks.conversation.spans`) values count together only within `FACT_SPAN` consecutive
sentences: a 2,000-token document about other people holds two of most entries' years and rare words somewhere,
while a description of one subject holds them close together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from guard.checks.conversation import lexical, spans
from guard.checks.evidence import Evidence, Segment
from guard.forget.embedder import Vectors
from guard.forget.facts import rare
from guard.forget.view import IndexView

FACT_SPAN = 3  # consecutive sentences of a passage whose values count together


class ValuesFound(NamedTuple):
    short: dict[str, tuple[frozenset[str], str]]  # texts of one span: per entry, the values found, and where
    best: dict[str, tuple[frozenset[str], str]]  # passages: per entry, the span that holds most rare values


class FactCheck:
    space = None  # embeds nothing

    def embed(self, segments: Sequence[Segment]) -> list[str]:
        return []

    def passages(self, segments: Sequence[Segment]) -> set[str]:
        return set()

    def read(self, segments: Sequence[Segment], view: IndexView, vectors: Mapping[str, Vectors]) -> ValuesFound:
        found: dict[str, tuple[set[str], str]] = {}
        best: dict[str, tuple[set[str], str]] = {}
        for segment in lexical(segments):
            cut = spans(segment.text, FACT_SPAN, bool(segment.block))
            for span in cut:
                for entry_id, words in view.find_values(span).items():
                    if len(cut) == 1 and not segment.block:
                        found.setdefault(entry_id, (set(), segment.where))[0].update(words)
                    elif entry_id not in best or len(rare(words)) > len(rare(best[entry_id][0])):
                        best[entry_id] = (words, segment.where)
        return ValuesFound(_frozen(found), _frozen(best))

    def evidence(self, readings: Sequence[ValuesFound], view: IndexView) -> list[Evidence]:
        found: dict[str, tuple[set[str], str]] = {}  # short texts: the conversation's values together
        best: dict[str, tuple[frozenset[str], str]] = {}  # passages: per entry, the one span that holds most
        for reading in readings:
            for entry_id, (words, where) in reading.short.items():
                found.setdefault(entry_id, (set(), where))[0].update(words)
            for entry_id, (words, where) in reading.best.items():
                if entry_id not in best or len(rare(words)) > len(rare(best[entry_id][0])):
                    best[entry_id] = (words, where)
        for entry_id, (words, where) in best.items():
            found.setdefault(entry_id, (set(), where))[0].update(words)
        return [Evidence(e, "fact", float(len(rare(w))), where, frozenset(w)) for e, (w, where) in found.items()]


def _frozen(found: dict[str, tuple[set[str], str]]) -> dict[str, tuple[frozenset[str], str]]:
    return {e: (frozenset(w), where) for e, (w, where) in found.items()}
