"""Distinctive words of an entry: the parts of its names (a surname alone) and its fact values (an occupation,
a city, a year, an award's distinctive word) — the weaker evidence that puts a conversation under watch, and
what a watched conversation's output must not state.

A fact value is a word of the entry's documents that is not a function word, not one of the 3,000 most frequent
English words (capitalised words inside a sentence — places, titles — only need to be outside the 1,000 most
frequent), and at least four letters long (or a number of three or more digits: a year). "Her father was a
civil engineer" gives "engineer"; "born in Karachi in 1975" gives "karachi" and "1975". A word is only
distinctive while few entries share it: one that more than `SHARED_SHARE` of the entries (and more than one)
have says nothing about any of them ("literary" in a forget set of authors), so look-ups skip it; nor does one
that more than `MAX_OWNERS` entries have, however large the index (at 50,000 entries a twentieth is 2,500: a
year or a city that common would put most near-domain conversations under watch, and the look-up of one long
text named thousands of entries).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from guard.forget.postings import Keys, Postings, Slots, string_keys
from guard.language import english
from guard.normalize import common_words, rarity
from guard.text import STOPWORDS, numbers, tokens

MIN_LETTERS = 4
COMMON_PROPER = 1000  # a capitalised word is a fact value unless it is among this many most frequent words
RARE = 5000  # a value outside this many most frequent words (or a number) is rare: rare values start a watch
COMMON = 3000  # this many of the most frequent English words are never a fact value
MAX_VALUES = 400  # per entry: bounded memory for very long documents
_CAPITALISED = re.compile(r"(?<=[a-z,;:]\s)([A-Z][\w'-]+)")
_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$|,\s+[^,]+$")  # "Name (qualifier)", "Name, qualifier"
SHARED_SHARE = 0.05  # a word more than this share of the entries have is not distinctive of any of them
MAX_OWNERS = 50  # nor is a word more than this many entries have (binds from 1,000 entries on)


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


def bare(name: str) -> str:
    """A name without the qualifier that tells it from others of the same name: "Victoria (Australia)" ->
    "Victoria", "Fresno, California" -> "Fresno". The qualifier is another thing's name, not a part of this one."""
    return _QUALIFIER.sub("", name).strip() or name


def name_parts(names: Iterable[str]) -> set[str]:
    """The words of an entry's names that could stand for it alone (a surname, a distinctive given name); not
    those of a qualifier ("Australia" of "Victoria (Australia)" stands for a country, not for the state)."""
    return {w for name in names for w in tokens(bare(name)) if len(w) >= MIN_LETTERS and w not in STOPWORDS}


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
    found = _found(documents, names)
    if len(found) <= MAX_VALUES:
        return set(found)
    return set(sorted(found, key=lambda w: (-specificity(w, found[w]), w))[:MAX_VALUES])


def vocabulary(documents: Iterable[str], names: Iterable[str]) -> list[tuple[str, int, float]]:
    """An entry's own vocabulary, as an operator sees it: each value of its documents (`fact_values`) with how
    often they use it and its `specificity`, the most specific first (the first `MAX_VALUES` are the ones kept)."""
    found = _found(documents, names)
    return sorted(((w, n, specificity(w, n)) for w, n in found.items()), key=lambda v: (-v[2], v[0]))


def _found(documents: Iterable[str], names: Iterable[str]) -> Counter[str]:
    """Each value of the documents, with how many of their words (or documents, for numbers) it is."""
    parts = {w for name in names for w in tokens(name)}
    found: Counter[str] = Counter()
    for doc in documents:
        words = tokens(doc)  # once per document: start-up reads every chunk of the index through here
        if english(doc, words):
            values = distinctive(words) | proper_nouns(doc)
            found.update(w for w in words if w in values)
        found.update(n for n in numbers(doc) if len(n) >= 3)
    for part in parts:
        found.pop(part, None)
    return found


def specificity(value: str, count: int) -> float:
    """How much a value says of its entry rather than of the world: rare in English, and said often in the
    entry's documents ("Grumman" five times in the Apollo program's article). A long entry (a whole article) has
    more values than `MAX_VALUES`: it keeps the most specific, not the first in alphabetical order."""
    return rarity(value) + 2.0 * math.log(count)


class WordIndex:
    """Word -> entries: which entries' words does a text contain? (And entry -> its words, when `keep_words`.)

    A word owned by more than `min_shared` entries and more than `SHARED_SHARE` of them (or `MAX_OWNERS`) is
    skipped (not distinctive). Fact values use `min_shared=1`; name parts allow a few owners (relatives share a
    surname).

    The pairs live in compact `Postings` keyed by a 64-bit hash of the word (12 bytes a pair): at 1e6 chunks
    the fact values are ~6.6 million (entry, word) pairs, which as Python dicts of sets took 886 MB of the
    process's 2.2 GB (bench/RESULTS.md, issue 15). Fact values keep no words per entry; name parts do (a
    rewrite redacts them, `of`)."""

    def __init__(self, min_shared: int = 1, keep_words: bool = True) -> None:
        self.min_shared = min_shared
        self.postings = Postings()
        self._slots = Slots()
        self._words: dict[str, frozenset[str]] | None = {} if keep_words else None

    def add(self, entry_id: str, words: Iterable[str]) -> None:
        self.bulk_add([(entry_id, words)])

    def bulk_add(self, items: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Many entries' words at once (start-up): straight into the sorted arrays."""
        keys: list[Keys] = []
        owners: list[npt.NDArray[np.int32]] = []
        for entry_id, words in items:
            mine = frozenset(words)
            if self._words is not None:
                self._words[entry_id] = self._words.get(entry_id, frozenset()) | mine
            keys.append(string_keys(mine))
            owners.append(np.full(len(mine), self._slots.number(entry_id), dtype=np.int32))
        if len(keys) == 1:  # one entry at run time: the recent additions, merged at the next compaction
            if len(keys[0]):
                self.postings.add(keys[0], int(owners[0][0]))
        elif keys:
            self.postings.bulk(np.concatenate(keys), np.concatenate(owners))

    def remove(self, entry_id: str) -> None:
        slot = self._slots.drop(entry_id)
        if slot is not None:
            self.postings.remove(slot)
        if self._words is not None:
            self._words.pop(entry_id, None)

    def of(self, entry_id: str) -> frozenset[str]:
        if self._words is None:
            raise TypeError("this index keeps no words per entry")
        return self._words.get(entry_id, frozenset())

    def find(self, text: str) -> dict[str, set[str]]:
        """Entry id -> which of its distinctive words the text contains (numbers in any script's digits)."""
        found: dict[str, set[str]] = defaultdict(set)
        most = max(self.min_shared, min(int(SHARED_SHARE * len(self._slots)), MAX_OWNERS))
        words = list(set(tokens(text)) | numbers(text))
        for row, slots in self.postings.hits(string_keys(words)).items():
            w = words[row]
            if len(slots) <= most:
                for slot in slots:
                    entry_id = self._slots.key(slot)
                    if entry_id is not None:
                        found[entry_id].add(w)
        return dict(found)
