"""Verbatim overlap: runs of n words shared between generated text and a forget document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from guard.checks.lexical import tokens


def _grams(toks: list[str], n: int) -> Iterable[int]:
    for i in range(len(toks) - n + 1):
        yield hash(tuple(toks[i : i + n]))


class NgramIndex:
    """Word n-grams (normalised tokens, hashed) of each entry's documents."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._owners: dict[int, set[str]] = defaultdict(set)
        self._by_entry: dict[str, set[int]] = {}

    def add(self, entry_id: str, documents: Iterable[str]) -> None:
        grams = self._by_entry.setdefault(entry_id, set())
        for doc in documents:
            for g in _grams(tokens(doc), self.n):
                grams.add(g)
                self._owners[g].add(entry_id)

    def remove(self, entry_id: str) -> None:
        for g in self._by_entry.pop(entry_id, set()):
            owners = self._owners[g]
            owners.discard(entry_id)
            if not owners:
                del self._owners[g]

    def find(self, text: str) -> dict[str, int]:
        """Entry id -> how many of the text's n-grams appear in that entry's documents."""
        hits: dict[str, int] = defaultdict(int)
        for g in _grams(tokens(text), self.n):
            for entry_id in self._owners.get(g, ()):
                hits[entry_id] += 1
        return dict(hits)
