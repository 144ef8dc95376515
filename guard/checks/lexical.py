"""Subject and alias mentions, tolerant of case, accents, spacing, punctuation and small typos.

Names and text are normalised to lowercase ASCII-folded word tokens. A name matches a run of text tokens whose
concatenation equals the name's concatenation (so "Yun-Hwa", "Yun Hwa" and "YunHwa" are one name), or is within
a small Damerau-Levenshtein distance of it. Typo candidates come from a symmetric-deletion index, so a look-up
costs a few dictionary probes per text token instead of a comparison with every name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import combinations

_NON_WORD = re.compile(r"[^0-9a-z]+")


def tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return [t for t in _NON_WORD.split(folded) if t]


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
    """Finds which entries' names are mentioned in a text."""

    def __init__(self, typo_min_chars: int = 6) -> None:
        self.typo_min_chars = typo_min_chars
        self._exact: dict[str, set[str]] = defaultdict(set)  # squashed name -> entry ids
        self._fuzzy: dict[str, set[str]] = defaultdict(set)  # deletion variant -> squashed names
        self._names: dict[str, list[list[str]]] = {}  # entry id -> its names as token lists
        self._anchors: Counter[str] = Counter()  # tokens of multi-token names (where a typo window may start)
        self._widths: Counter[int] = Counter()  # token counts of the names

    def allowed_typos(self, length: int) -> int:
        m = self.typo_min_chars
        return 0 if length < m else 1 if length < 2 * m else 2

    def add(self, entry_id: str, names: Iterable[str]) -> None:
        added = [toks for toks in (tokens(n) for n in names) if toks]
        for toks in added:
            key = "".join(toks)
            if not self._exact[key]:
                for variant in _deletes(key, self.allowed_typos(len(key))):
                    self._fuzzy[variant].add(key)
            self._exact[key].add(entry_id)
            self._widths[len(toks)] += 1
            if len(toks) > 1:
                self._anchors.update(toks)
        self._names.setdefault(entry_id, []).extend(added)

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
                for variant in _deletes(key, self.allowed_typos(len(key))):
                    self._fuzzy[variant].discard(key)
                    if not self._fuzzy[variant]:
                        del self._fuzzy[variant]
        self._widths = +self._widths  # drop zero counts
        self._anchors = +self._anchors

    def __len__(self) -> int:
        return len(self._names)

    def find(self, text: str) -> set[str]:
        """Entry ids whose subject or an alias is mentioned in `text`."""
        if not self._exact:
            return set()
        toks = tokens(text)
        found: set[str] = set()
        # A name of w tokens may be written as w-1 or w+1 tokens ("Yun-Hwa" vs "YunHwa"); try those widths too.
        max_width = max(self._widths) + 1
        for width in range(1, max_width + 1):
            for i in range(len(toks) - width + 1):
                run = toks[i : i + width]
                window = "".join(run)
                hit = self._exact.get(window)
                if hit:
                    found |= hit
                elif width == 1 or any(t in self._anchors for t in run):
                    found |= self._fuzzy_lookup(window)
        return found

    def _fuzzy_lookup(self, window: str) -> set[str]:
        k = self.allowed_typos(len(window) + 2)
        if k == 0:
            return set()
        found: set[str] = set()
        for variant in _deletes(window, k):
            for key in self._fuzzy.get(variant, ()):
                limit = self.allowed_typos(len(key))
                if osa_distance(window, key, limit) <= limit:
                    found |= self._exact[key]
        return found
