"""A compact multimap from 64-bit hashes to small integer owners, for millions of keys.

Python dicts of sets cost ~100+ bytes per (key, owner) pair; the word n-grams of a million forget chunks and the
typo variants of fifty thousand names are tens of millions of pairs. Here the bulk lives in two sorted numpy
arrays (12 bytes per pair) searched with `searchsorted`; recent additions sit in a small dict until the next
compaction; removed owners are tombstones, filtered on lookup and dropped at compaction. An owner number is never
reused after its removal.

Compaction is split so the expensive part never blocks readers: `freeze()` (on the thread that owns the
structure) sets the recent additions aside, `build()` (any thread) merges them into new arrays, `install()`
(owner thread again) swaps the arrays in. Additions and removals made in between stay in effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress

import numpy as np
import numpy.typing as npt

Keys = npt.NDArray[np.uint64]
Owners = npt.NDArray[np.int32]

_MASK = (1 << 64) - 1
_EMPTY_KEYS: Keys = np.zeros(0, dtype=np.uint64)
_EMPTY_OWNERS: Owners = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class Frozen:
    keys: Keys
    owners: Owners
    recent: dict[int, set[int]]
    dead: frozenset[int]


class Postings:
    def __init__(self, compact_at: int = 200_000) -> None:
        self.compact_at = compact_at  # pairs in `recent` that make compaction worthwhile
        self._keys = _EMPTY_KEYS
        self._owners = _EMPTY_OWNERS
        self._recent: dict[int, set[int]] = {}
        self._recent_pairs = 0
        self._frozen: dict[int, set[int]] = {}  # set aside by freeze(), until install()
        self._dead: set[int] = set()

    def __len__(self) -> int:
        return len(self._keys) + self._recent_pairs + sum(len(v) for v in self._frozen.values())

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._owners.nbytes)

    def add(self, keys: Keys, owner: int) -> None:
        for key in np.unique(keys).tolist():
            owners = self._recent.setdefault(key, set())
            if owner not in owners:
                owners.add(owner)
                self._recent_pairs += 1

    def bulk(self, keys: Keys, owners: Owners) -> None:
        """Load many pairs at once (at start): merged straight into the sorted arrays. Only the new pairs are
        sorted, then inserted in one linear pass: start-up loads in batches, and sorting everything again per
        batch made loading quadratic (1e6 chunks: a quarter of the load time was `lexsort`)."""
        order = np.lexsort((owners, keys))
        keys = keys.astype(np.uint64, copy=False)[order]
        owners = owners.astype(np.int32, copy=False)[order]
        if not len(self._keys):
            self._keys, self._owners = np.ascontiguousarray(keys), np.ascontiguousarray(owners)
            return
        at = np.searchsorted(self._keys, keys, side="right")  # after equal keys: pairs already held come first
        self._keys = np.insert(self._keys, at, keys)
        self._owners = np.insert(self._owners, at, owners)

    def remove(self, owner: int) -> None:
        """Tombstone an owner: its pairs no longer match; compaction drops them."""
        self._dead.add(owner)

    def lookup(self, keys: Keys) -> list[set[int]]:
        """The live owners of each key, an empty set where none (a dense view of `hits`, which the look-ups use)."""
        found = self.hits(keys)
        return [found.get(row, set()) for row in range(len(keys))]

    def hits(self, keys: Keys) -> dict[int, set[int]]:
        """The live owners of the keys that have any, by row. A text's words and typo variants mostly have none,
        so only those that do cost Python work: the arrays are searched in numpy, the recent additions probed
        with the dict's own `__contains__` (thousands of keys a call for a passage's typo variants)."""
        out: dict[int, set[int]] = {}
        if len(self._keys) and len(keys):
            lo = np.searchsorted(self._keys, keys, side="left")
            hi = np.searchsorted(self._keys, keys, side="right")
            for row in np.flatnonzero(hi > lo).tolist():
                out[row] = set(self._owners[lo[row] : hi[row]].tolist())
        listed: list[int] | None = None
        for table in (self._recent, self._frozen):
            if table and len(keys):
                listed = keys.tolist() if listed is None else listed
                for row in compress(range(len(listed)), map(table.__contains__, listed)):
                    out.setdefault(row, set()).update(table[listed[row]])
        if self._dead:
            for row in list(out):
                out[row] -= self._dead
                if not out[row]:
                    del out[row]
        return out

    @property
    def frozen(self) -> bool:
        """A compaction is under way."""
        return bool(self._frozen)

    def needs_compaction(self) -> bool:
        return not self._frozen and (self._recent_pairs >= self.compact_at or len(self._dead) > 1000)

    def freeze(self) -> Frozen:
        self._frozen, self._recent, self._recent_pairs = self._recent, {}, 0
        return Frozen(self._keys, self._owners, self._frozen, frozenset(self._dead))

    @staticmethod
    def build(frozen: Frozen) -> tuple[Keys, Owners]:
        pairs = [(k, o) for k, owners in frozen.recent.items() for o in owners]
        keys = np.fromiter((k for k, _ in pairs), dtype=np.uint64, count=len(pairs))
        owners = np.fromiter((o for _, o in pairs), dtype=np.int32, count=len(pairs))
        return _merge(frozen.keys, frozen.owners, keys, owners, frozen.dead)

    def install(self, frozen: Frozen, built: tuple[Keys, Owners]) -> None:
        self._keys, self._owners = built
        self._frozen = {}
        self._dead -= frozen.dead  # their pairs are gone from the arrays (owners are never reused)

    def thaw(self, frozen: Frozen) -> None:
        """Give up a compaction (its build failed): the set-aside pairs become recent again."""
        for key, owners in frozen.recent.items():
            for owner in owners:
                self.add(np.array([key], dtype=np.uint64), owner)
        self._frozen = {}

    def compact(self) -> None:
        """All three steps on the calling thread (tests, small structures)."""
        frozen = self.freeze()
        self.install(frozen, self.build(frozen))


def _merge(
    keys: Keys, owners: Owners, more_keys: Keys, more_owners: Owners, dead: frozenset[int]
) -> tuple[Keys, Owners]:
    all_keys = np.concatenate([keys, more_keys.astype(np.uint64, copy=False)])
    all_owners = np.concatenate([owners, more_owners.astype(np.int32, copy=False)])
    if dead:
        live = ~np.isin(all_owners, np.fromiter(dead, dtype=np.int32, count=len(dead)))
        all_keys, all_owners = all_keys[live], all_owners[live]
    order = np.lexsort((all_owners, all_keys))
    return np.ascontiguousarray(all_keys[order]), np.ascontiguousarray(all_owners[order])


def string_keys(strings: Iterable[str]) -> Keys:
    """64-bit keys of strings (Python's string hash: stable within the process, which is all postings need)."""
    return np.fromiter((hash(s) & _MASK for s in strings), dtype=np.uint64)


class Slots:
    """Small integer numbers for string keys (entry ids), never reused after `drop`: the owners of postings."""

    def __init__(self) -> None:
        self._number: dict[str, int] = {}
        self._key: dict[int, str] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._number)

    def number(self, key: str) -> int:
        """The key's number, given on first use."""
        n = self._number.get(key)
        if n is None:
            n = self._number[key] = self._next
            self._key[n] = key
            self._next += 1
        return n

    def get(self, key: str) -> int | None:
        """The key's number, if it has one."""
        return self._number.get(key)

    def drop(self, key: str) -> int | None:
        n = self._number.pop(key, None)
        if n is not None:
            del self._key[n]
        return n

    def key(self, n: int) -> str | None:
        return self._key.get(n)
