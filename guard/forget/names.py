"""Subject and alias mentions, tolerant of case, accents, spacing, punctuation and small typos.

Names and text are normalised to lowercase ASCII-folded word tokens. A name matches a run of text tokens whose
concatenation equals the name's concatenation (so "Yun-Hwa", "Yun Hwa" and "YunHwa" are one name), or is within
a small Damerau-Levenshtein distance of it. Typo candidates come from a symmetric-deletion index, so a look-up
costs a few dictionary probes per text token instead of a comparison with every name.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import combinations

import numpy as np
import numpy.typing as npt

from guard.forget.postings import Keys, Postings
from guard.text import tokens

_MASK = (1 << 64) - 1
FUZZY_BATCH = 512  # windows whose typo variants are looked up together


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance, or limit + 1 once it is certainly above `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str, k: int) -> set[str]:
    out = {word}
    for d in range(1, min(k, len(word) - 1) + 1):
        for idx in combinations(range(len(word)), d):
            drop = set(idx)
            out.add("".join(c for i, c in enumerate(word) if i not in drop))
    return out


class NameMatcher:
    """Finds which entries' names are mentioned in a text.

    Exact names live in a dict; the typo variants (symmetric deletions, ~100 per long name) live in compact
    postings keyed by a hash of the variant, so tens of thousands of names fit in ~150 MB. A hash collision only
    adds a candidate, which the distance check then rejects.
    """

    min_key = 1  # names whose key is shorter are not matched

    def __init__(self, typo_min_chars: int = 6) -> None:
        self.typo_min_chars = typo_min_chars
        self._exact: dict[str, set[str]] = defaultdict(set)  # squashed name -> entry ids
        self.fuzzy = Postings()  # hash of a deletion variant -> name slots
        self._slot: dict[str, int] = {}  # squashed name -> its slot while it has owners
        self._name: dict[int, str] = {}  # slot -> squashed name
        self._next = 0
        self._names: dict[str, list[list[str]]] = {}  # entry id -> its names as token lists
        self._anchors: Counter[str] = Counter()  # tokens of multi-token names (where a typo window may start)
        self._widths: Counter[int] = Counter()  # token counts of the names

    def tokens(self, text: str) -> list[str]:
        return tokens(text)

    def allowed_typos(self, length: int) -> int:
        m = self.typo_min_chars
        return 0 if length < m else 1 if length < m + 4 else 2

    def add(self, entry_id: str, names: Iterable[str]) -> None:
        for key, slot in self._add(entry_id, names):
            self.fuzzy.add(_hashes(_deletes(key, self.allowed_typos(len(key)))), slot)

    def add_many(self, items: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Many entries at once (start-up): their typo variants go straight into the compact arrays."""
        keys: list[Keys] = []
        slots: list[npt.NDArray[np.int32]] = []
        for entry_id, names in items:
            for key, slot in self._add(entry_id, names):
                variants = _hashes(_deletes(key, self.allowed_typos(len(key))))
                keys.append(variants)
                slots.append(np.full(len(variants), slot, dtype=np.int32))
        if keys:
            self.fuzzy.bulk(np.concatenate(keys), np.concatenate(slots))

    def _add(self, entry_id: str, names: Iterable[str]) -> list[tuple[str, int]]:
        """Record an entry's names; returns the names new to the matcher with their slots."""
        new: list[tuple[str, int]] = []
        added = [toks for toks in (self.tokens(n) for n in names) if len("".join(toks)) >= self.min_key]
        for toks in added:
            key = "".join(toks)
            if not self._exact[key]:
                slot = self._slot[key] = self._next
                self._name[slot] = key
                self._next += 1
                new.append((key, slot))
            self._exact[key].add(entry_id)
            self._widths[len(toks)] += 1
            if len(toks) > 1:
                self._anchors.update(toks)
        self._names.setdefault(entry_id, []).extend(added)
        return new

    def remove(self, entry_id: str) -> None:
        for toks in self._names.pop(entry_id, []):
            key = "".join(toks)
            self._widths[len(toks)] -= 1
            if len(toks) > 1:
                self._anchors.subtract(toks)
            owners = self._exact.get(key)
            if owners is None:
                continue
            owners.discard(entry_id)
            if not owners:
                del self._exact[key]
                slot = self._slot.pop(key)
                del self._name[slot]
                self.fuzzy.remove(slot)
        self._widths = +self._widths  # drop zero counts
        self._anchors = +self._anchors

    def __len__(self) -> int:
        return len(self._names)

    def find(self, text: str) -> set[str]:
        """Entry ids whose subject or an alias is mentioned in `text`."""
        if not self._exact:
            return set()
        toks = self.tokens(text)
        found: set[str] = set()
        fuzzy: list[str] = []  # windows to look up with typos
        # A name of w tokens may be written as w-1 or w+1 tokens ("Yun-Hwa" vs "YunHwa"); try those widths too.
        max_width = max(self._widths) + 1
        for width in range(1, max_width + 1):
            for i in range(len(toks) - width + 1):
                run = toks[i : i + width]
                window = "".join(run)
                hit = self._exact.get(window)
                if hit:
                    found |= hit
                elif (width == 1 or any(t in self._anchors for t in run)) and self.allowed_typos(len(window) + 2):
                    fuzzy.append(window)
        return found | self._fuzzy_lookup(fuzzy)

    def _fuzzy_lookup(self, windows: list[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(windows))
        for start in range(0, len(unique), FUZZY_BATCH):  # bounded memory for very long texts
            batch = unique[start : start + FUZZY_BATCH]
            variants = [(w, v) for w in batch for v in _deletes(w, self.allowed_typos(len(w) + 2))]
            checked: set[tuple[str, int]] = set()
            for (window, _), slots in zip(variants, self.fuzzy.lookup(_hashes(v for _, v in variants)), strict=True):
                for slot in slots:
                    key = self._name.get(slot)
                    if key is None or (window, slot) in checked:
                        continue
                    checked.add((window, slot))
                    limit = self.allowed_typos(len(key))
                    if osa_distance(window, key, limit) <= limit:
                        found |= self._exact[key]
        return found


def _hashes(strings: Iterable[str]) -> Keys:
    return np.fromiter((hash(s) & _MASK for s in strings), dtype=np.uint64)
