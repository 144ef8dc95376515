"""Subject and alias mentions, tolerant of case, accents, spacing, punctuation and small typos.

Names and text are normalised to lowercase ASCII-folded word tokens. A name matches a run of text tokens whose
concatenation equals the name's concatenation (so "Yun-Hwa", "Yun Hwa" and "YunHwa" are one name), or is within
a small Damerau-Levenshtein distance of it. Typo candidates come from a symmetric-deletion index, so a look-up
costs a few dictionary probes per text token instead of a comparison with every name. Only windows within two
letters of some name's length are looked up, and their answers are remembered until the names change: a long
document re-sent with each request, or read in several normalised views, costs its typo look-ups once.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable
from itertools import accumulate, repeat

import numpy as np
import numpy.typing as npt

from guard.forget.postings import Keys, Postings, string_keys
from guard.text import tokens

FUZZY_BATCH = 512  # windows whose typo variants are looked up together
REMEMBERED = 1 << 16  # windows (typo look-ups) and texts (whole look-ups) remembered until the names change


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
    """The word with up to `k` letters deleted (never all of them): one deletion at a time, by slicing."""
    out = {word}
    frontier = {word}
    for _ in range(min(k, len(word) - 1)):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
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
        self._key_lengths: Counter[int] = Counter()  # letter counts of the names (their squashed keys)
        # hash of a window -> entry ids, for the names now (hashes, like the texts' digests: no prompt text is held)
        self._typos: OrderedDict[int, frozenset[str]] = OrderedDict()
        self._texts: OrderedDict[bytes, frozenset[str]] = OrderedDict()  # digest of a text's tokens -> entry ids

    def tokens(self, text: str) -> list[str]:
        return tokens(text)

    def allowed_typos(self, length: int) -> int:
        m = self.typo_min_chars
        return 0 if length < m else 1 if length < m + 4 else 2

    def add(self, entry_id: str, names: Iterable[str]) -> None:
        for key, slot in self._add(entry_id, names):
            self.fuzzy.add(string_keys(_deletes(key, self.allowed_typos(len(key)))), slot)

    def add_many(self, items: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Many entries at once (start-up): their typo variants go straight into the compact arrays."""
        keys: list[Keys] = []
        slots: list[npt.NDArray[np.int32]] = []
        for entry_id, names in items:
            for key, slot in self._add(entry_id, names):
                variants = string_keys(_deletes(key, self.allowed_typos(len(key))))
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
                self._key_lengths[len(key)] += 1
                self._forget_found()
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
                self._key_lengths[len(key)] -= 1
                self._forget_found()
                del self._exact[key]
                slot = self._slot.pop(key)
                del self._name[slot]
                self.fuzzy.remove(slot)
        self._widths = +self._widths  # drop zero counts
        self._key_lengths = +self._key_lengths
        self._anchors = +self._anchors

    def __len__(self) -> int:
        return len(self._names)

    def _forget_found(self) -> None:
        self._typos.clear()
        self._texts.clear()

    def find(self, text: str) -> set[str]:
        """Entry ids whose subject or an alias is mentioned in `text`."""
        if not self._exact:
            return set()
        toks = self.tokens(text)
        digest = hashlib.blake2b("\x00".join(toks).encode(), digest_size=16).digest()
        known = self._texts.get(digest)  # the same words again: a normalised view, a re-sent document
        if known is not None:
            self._texts.move_to_end(digest)
            return set(known)
        found = self._find(toks)
        self._texts[digest] = frozenset(found)
        while len(self._texts) > REMEMBERED:
            self._texts.popitem(last=False)
        return found

    def _find(self, toks: list[str]) -> set[str]:
        found: set[str] = set()
        fuzzy: list[str] = []  # windows to look up with typos
        # only windows within two letters of a name's length can be one (counted before a window is joined)
        near = {n for length in self._key_lengths for n in range(length - 2, length + 3)}
        ends = list(accumulate((len(t) for t in toks), initial=0))
        # anchors before each token: a window holds one when the count grows across it
        anchors = list(accumulate((t in self._anchors for t in toks), initial=0))
        typos_from = self.typo_min_chars - 2  # a window this long or longer may hold a typo (allowed_typos)
        exact = self._exact
        # A name of w tokens may be written as w-1 or w+1 tokens ("Yun-Hwa" vs "YunHwa"); try those widths too.
        max_width = max(self._widths) + 1
        for width in range(1, max_width + 1):
            for i in range(len(toks) - width + 1):
                length = ends[i + width] - ends[i]
                if length not in near:
                    continue
                window = toks[i] if width == 1 else "".join(toks[i : i + width])
                hit = exact.get(window)
                if hit:
                    found |= hit
                elif length >= typos_from and (width == 1 or anchors[i + width] > anchors[i]):
                    fuzzy.append(window)
        return found | self._fuzzy_lookup(fuzzy)

    def _fuzzy_lookup(self, windows: list[str]) -> set[str]:
        found: set[str] = set()
        unique: list[str] = []
        for window in dict.fromkeys(windows):
            known = self._typos.get(hash(window))
            if known is None:
                unique.append(window)
            else:
                self._typos.move_to_end(hash(window))
                found |= known
        answers: dict[str, set[str]] = {w: set() for w in unique}
        for start in range(0, len(unique), FUZZY_BATCH):  # bounded memory for very long texts
            batch = unique[start : start + FUZZY_BATCH]
            variants: list[str] = []
            of: list[int] = []  # the window of each variant (an index into batch)
            for n, w in enumerate(batch):
                deleted = _deletes(w, self.allowed_typos(len(w) + 2))
                variants.extend(deleted)
                of.extend(repeat(n, len(deleted)))
            checked: set[tuple[str, int]] = set()
            for row, slots in self.fuzzy.hits(string_keys(variants)).items():
                window = batch[of[row]]
                for slot in slots:
                    key = self._name.get(slot)
                    if key is None or (window, slot) in checked:
                        continue
                    checked.add((window, slot))
                    limit = self.allowed_typos(len(key))
                    if osa_distance(window, key, limit) <= limit:
                        answers[window] |= self._exact[key]
        for window, ids in answers.items():
            self._typos[hash(window)] = frozenset(ids)
            found |= ids
        while len(self._typos) > REMEMBERED:
            self._typos.popitem(last=False)
        return found
