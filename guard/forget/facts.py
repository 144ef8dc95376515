"""Distinctive words of an entry: the parts of its names (a surname alone) and its fact values (an occupation,
a city, a year, an award's distinctive word) — the weaker evidence that puts a conversation under watch, and
what a watched conversation's output must not state.

A fact value is a word of the entry's documents that is not a function word, not one of the 3,000 most frequent
English words (capitalised words inside a sentence — places, titles — only need to be outside the 1,000 most
frequent), and at least four letters long (or a number of three or more digits: a year). "Her father was a
civil engineer" gives "engineer"; "born in Karachi in 1975" gives "karachi" and "1975". A word is only
distinctive while few entries share it: one that more than `SHARED_SHARE` of the entries (and more than one)
have says nothing about any of them ("literary" in a forget set of authors), so look-ups skip it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from guard.language import english
from guard.normalize import common_words
from guard.text import STOPWORDS, numbers, tokens

MIN_LETTERS = 4
COMMON_PROPER = 1000  # a capitalised word is a fact value unless it is among this many most frequent words
RARE = 5000  # a value outside this many most frequent words (or a number) is rare: rare values start a watch
COMMON = 3000  # this many of the most frequent English words are never a fact value
MAX_VALUES = 400  # per entry: bounded memory for very long documents
_CAPITALISED = re.compile(r"(?<=[a-z,;:]\s)([A-Z][\w'-]+)")
SHARED_SHARE = 0.05  # a word more than this share of the entries have is not distinctive of any of them


def distinctive(words: Iterable[str]) -> set[str]:
    common = common_words(COMMON)
    out: set[str] = set()
    for w in words:
        if w.isdigit():
            if len(w) >= 3:
                out.add(w)
        elif len(w) >= MIN_LETTERS and w not in STOPWORDS and w not in common:
            out.add(w)
    return out


def rare(words: Iterable[str]) -> set[str]:
    """The rare ones among fact values: numbers and words outside the `RARE` most frequent English words."""
    common = common_words(RARE)
    return {w for w in words if w.isdigit() or w not in common}


def name_parts(names: Iterable[str]) -> set[str]:
    """The words of an entry's names that could stand for it alone (a surname, a distinctive given name)."""
    return {w for name in names for w in tokens(name) if len(w) >= MIN_LETTERS and w not in STOPWORDS}


def proper_nouns(text: str) -> set[str]:
    """Capitalised words not at a sentence start (places, titles, awards): facts even when common in English."""
    common = common_words(COMMON_PROPER)
    out: set[str] = set()
    for m in _CAPITALISED.finditer(text):
        out.update(w for w in tokens(m.group(1)) if len(w) >= MIN_LETTERS and w not in STOPWORDS and w not in common)
    return out


def fact_values(documents: Iterable[str], names: Iterable[str]) -> set[str]:
    """The values of an entry's documents. Words only from English ones: rarity is judged on English word
    frequencies, so every word of an Arabic or French document would pass as rare ("author", "born" too) and
    any text in that language would share several with it. Numbers (a year, in any script's digits) from all."""
    parts = {w for name in names for w in tokens(name)}
    docs = list(documents)
    english_docs = [doc for doc in docs if english(doc)]
    values = distinctive(w for doc in english_docs for w in tokens(doc))
    values |= {w for doc in english_docs for w in proper_nouns(doc)}
    values |= {n for doc in docs for n in numbers(doc) if len(n) >= 3}
    return set(sorted(values - parts)[:MAX_VALUES])


class WordIndex:
    """Entry -> its words, and word -> entries: which entries' words does a text contain?

    A word owned by more than `min_shared` entries and more than `SHARED_SHARE` of them is skipped (not
    distinctive). Fact values use `min_shared=1`; name parts allow a few owners (relatives share a surname)."""

    def __init__(self, min_shared: int = 1) -> None:
        self.min_shared = min_shared
        self._entries: dict[str, frozenset[str]] = {}
        self._owners: dict[str, set[str]] = defaultdict(set)

    def add(self, entry_id: str, words: Iterable[str]) -> None:
        mine = frozenset(words)
        self._entries[entry_id] = mine
        for w in mine:
            self._owners[w].add(entry_id)

    def remove(self, entry_id: str) -> None:
        for w in self._entries.pop(entry_id, frozenset()):
            owners = self._owners.get(w)
            if owners is not None:
                owners.discard(entry_id)
                if not owners:
                    del self._owners[w]

    def of(self, entry_id: str) -> frozenset[str]:
        return self._entries.get(entry_id, frozenset())

    def find(self, text: str) -> dict[str, set[str]]:
        """Entry id -> which of its distinctive words the text contains (numbers in any script's digits)."""
        found: dict[str, set[str]] = defaultdict(set)
        most = max(self.min_shared, int(SHARED_SHARE * len(self._entries)))
        for w in set(tokens(text)) | numbers(text):
            owners = self._owners.get(w, ())
            if len(owners) <= most:
                for entry_id in owners:
                    found[entry_id].add(w)
        return dict(found)
