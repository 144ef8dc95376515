"""Verbatim overlap: runs of n words shared between generated text and a forget document.

Each run of n normalised tokens is reduced to a 64-bit polynomial hash of its token hashes (computed with numpy
over a whole text at once) and kept in compact postings, so a million forget chunks fit in a few hundred MB.
A hash collision can only add a match of an unrelated run, at odds of about n-grams / 2**64.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from guard.forget.postings import Keys, Postings, Slots, string_keys
from guard.text import tokens

_BASE = np.uint64(0x100000001B3)  # an odd multiplier (FNV prime); arithmetic wraps modulo 2**64


def gram_hashes(text: str, n: int) -> Keys:
    """One hash per run of n consecutive tokens of `text`, in order."""
    toks = tokens(text)
    if len(toks) < n:
        return np.zeros(0, dtype=np.uint64)
    h = string_keys(toks)
    count = len(toks) - n + 1
    out = np.zeros(count, dtype=np.uint64)
    for j in range(n):
        out = out * _BASE + h[j : j + count]
    return out


class NgramIndex:
    """Word n-grams of each entry's documents."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.postings = Postings()
        self._slots = Slots()

    def add(self, entry_id: str, documents: Iterable[str]) -> None:
        slot = self._slots.number(entry_id)
        for doc in documents:
            self.postings.add(gram_hashes(doc, self.n), slot)

    def bulk_add(self, documents: Iterable[tuple[str, str]]) -> None:
        """(entry id, document) pairs loaded in one go, straight into the sorted arrays (start-up)."""
        keys: list[Keys] = []
        owners: list[np.ndarray] = []
        for entry_id, doc in documents:
            grams = np.unique(gram_hashes(doc, self.n))
            keys.append(grams)
            owners.append(np.full(len(grams), self._slots.number(entry_id), dtype=np.int32))
        if keys:
            self.postings.bulk(np.concatenate(keys), np.concatenate(owners))

    def remove(self, entry_id: str) -> None:
        slot = self._slots.drop(entry_id)
        if slot is not None:
            self.postings.remove(slot)

    def find(self, text: str) -> dict[str, int]:
        """Entry id -> how many of the text's n-grams appear in that entry's documents."""
        hits: Counter[str] = Counter()
        for owners in self.postings.hits(gram_hashes(text, self.n)).values():
            for slot in owners:
                entry_id = self._slots.key(slot)
                if entry_id is not None:
                    hits[entry_id] += 1
        return dict(hits)
