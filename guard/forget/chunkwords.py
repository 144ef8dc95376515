"""The content words of each chunk, and of each entry: what an answer can be checked against.

"Who initially wanted more unmanned testing of the LM?" — "Grumman." The answer's word is in the sentence of the
Apollo program's article that the question retrieves; a neighbour's answer is not (`guard.checks.answers`). So
the index keeps, per chunk, the hashes of its content words (tokens that are not function words), and per entry
the union of its chunks' and names' words (a question that names what the entry never mentions is about
something else) and of its proper nouns and numbers (`details`: a telling value in an answer, the details that
tell a namesake apart: `guard.checks.identity`).

Compact, like the postings (`guard.forget.postings`): 32-bit hashes in one flat array, each chunk's a sorted run
of it (its start and length in arrays indexed by chunk id). A wiki sentence has ~12 content words: ~50 bytes a
chunk, 50 MB at 1e6 chunks. A collision of two words' 32-bit hashes in one chunk's dozen is negligible. Removed
chunks leave their run until the garbage outweighs the live words (then the array is compacted). No text is held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from guard.forget.facts import proper_nouns
from guard.text import STOPWORDS, numbers, tokens

Hashes = npt.NDArray[np.uint32]


def details(text: str) -> set[str]:
    """The words of a text that tell who or what it is about: its proper nouns and numbers of three or more
    digits ("Feyenoord", "2013"; `guard.checks.identity`)."""
    return proper_nouns(text) | {n for n in numbers(text) if len(n) >= 3}


def content_words(text: str) -> set[str]:
    return {t for t in tokens(text) if t not in STOPWORDS}


def hashes(words: Iterable[str]) -> Hashes:
    """Sorted, unique 32-bit hashes of the words (Python's string hash: stable within the process)."""
    return np.unique(np.fromiter((hash(w) & 0xFFFFFFFF for w in words), dtype=np.uint32))


def _among(words: Iterable[str], held: Hashes) -> set[str]:
    """The words whose hashes are held."""
    words = list(words)
    there = np.isin(np.fromiter((hash(w) & 0xFFFFFFFF for w in words), dtype=np.uint32, count=len(words)), held)
    return {w for w, t in zip(words, there.tolist(), strict=True) if t}


class ChunkWords:
    def __init__(self) -> None:
        self._data: Hashes = np.zeros(1024, dtype=np.uint32)
        self._used = 0
        self._start: npt.NDArray[np.int64] = np.zeros(1024, dtype=np.int64)
        self._len: npt.NDArray[np.int32] = np.zeros(1024, dtype=np.int32)
        self._garbage = 0
        self._entry: dict[str, Hashes] = {}
        self._details: dict[str, Hashes] = {}  # entry -> hashes of the proper nouns and numbers its chunks use

    def add(self, entry_ids: Sequence[str], ids: Sequence[int], texts: Sequence[str]) -> None:
        """Chunks (with the entry each belongs to, in order) and their texts: their words are recorded."""
        runs = [hashes(content_words(text)) for text in texts]
        if not runs:
            return
        self._grow_ids(max(ids) + 1)
        self._grow_data(self._used + sum(len(r) for r in runs))
        for chunk_id, run in zip(ids, runs, strict=True):
            self._garbage += int(self._len[chunk_id])
            self._start[chunk_id], self._len[chunk_id] = self._used, len(run)
            self._data[self._used : self._used + len(run)] = run
            self._used += len(run)
        words: dict[str, list[Hashes]] = {}
        told: dict[str, list[Hashes]] = {}
        for entry_id, run, text in zip(entry_ids, runs, texts, strict=True):
            words.setdefault(entry_id, []).append(run)
            told.setdefault(entry_id, []).append(hashes(details(text)))
        for entry_id, mine in words.items():
            self._entry[entry_id] = np.unique(np.concatenate([self._entry.get(entry_id, hashes(())), *mine]))
            self._details[entry_id] = np.unique(
                np.concatenate([self._details.get(entry_id, hashes(())), *told[entry_id]])
            )

    def add_names(self, entry_id: str, names: Iterable[str]) -> None:
        words = hashes(w for name in names for w in content_words(name))
        self._entry[entry_id] = np.union1d(self._entry.get(entry_id, hashes(())), words)

    def remove(self, entry_id: str, ids: npt.NDArray[np.int64]) -> None:
        self._entry.pop(entry_id, None)
        self._details.pop(entry_id, None)
        ids = ids[ids < len(self._len)]
        self._garbage += int(self._len[ids].sum())
        self._len[ids] = 0
        if self._garbage > max(self._used - self._garbage, 1 << 16):
            self._compact()

    def found(self, chunk_ids: Iterable[int], words: Iterable[str]) -> set[str]:
        """Which of the words are in any of the chunks."""
        runs = [self._run(c) for c in chunk_ids]
        return _among(words, np.concatenate(runs) if runs else hashes(()))

    def counts(self, chunk_ids: npt.NDArray[np.int64], words: Iterable[str]) -> npt.NDArray[np.int64]:
        """For each chunk, how many of the words it uses."""
        lens = np.where(chunk_ids < len(self._len), self._len[np.minimum(chunk_ids, len(self._len) - 1)], 0)
        lens = lens.astype(np.int64)
        if not lens.sum():
            return np.zeros(len(chunk_ids), dtype=np.int64)
        owner = np.repeat(np.arange(len(chunk_ids)), lens)
        starts = self._start[np.minimum(chunk_ids, len(self._len) - 1)]
        at = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
        hit = np.isin(self._data[at], hashes(set(words)))
        return np.bincount(owner[hit], minlength=len(chunk_ids)).astype(np.int64)

    def lacks(self, entry_id: str, words: Iterable[str]) -> set[str]:
        """Which of the words the entry's chunks and names never use (all of them for an unknown entry)."""
        words = set(words)
        return words - _among(words, self._entry.get(entry_id, hashes(())))

    def lacking(self, entry_id: str, held: Hashes) -> int:
        """How many of the hashed words (`hashes`) the entry's chunks and names never use."""
        return int((~np.isin(held, self._entry.get(entry_id, hashes(())))).sum())

    def details_among(self, entry_id: str, words: Iterable[str]) -> set[str]:
        """Which of the words are among the entry's proper nouns and numbers."""
        return _among(words, self._details.get(entry_id, hashes(())))

    def known_details(self, entry_id: str) -> int:
        """How many distinct proper nouns and numbers the entry's chunks use (`details`)."""
        return len(self._details.get(entry_id, ()))

    def _run(self, chunk_id: int) -> Hashes:
        if not 0 <= chunk_id < len(self._len):
            return hashes(())
        start = int(self._start[chunk_id])
        return self._data[start : start + int(self._len[chunk_id])]

    def _grow_ids(self, n: int) -> None:
        if n > len(self._len):
            size = max(n, 2 * len(self._len))
            self._start = np.concatenate([self._start, np.zeros(size - len(self._start), dtype=np.int64)])
            self._len = np.concatenate([self._len, np.zeros(size - len(self._len), dtype=np.int32)])

    def _grow_data(self, n: int) -> None:
        if n > len(self._data):
            grown = np.zeros(max(n, 2 * len(self._data)), dtype=np.uint32)
            grown[: self._used] = self._data[: self._used]
            self._data = grown

    def _compact(self) -> None:
        live = np.flatnonzero(self._len > 0)
        runs = [self._run(int(c)) for c in live]
        data = np.concatenate(runs) if runs else hashes(())
        self._data = np.concatenate([data, np.zeros(max(1024, len(data) // 2), dtype=np.uint32)])
        self._used = len(data)
        starts = np.cumsum([0, *(len(r) for r in runs)])[:-1]
        self._start[live] = starts
        self._garbage = 0
