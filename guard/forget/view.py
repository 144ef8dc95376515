"""The in-memory forget index every request reads: entries, their vectors, names and verbatim n-grams.

`IndexView` is what the checks may use (read-only); `MemoryIndex` is the one implementation, and its changes
(`add`, `remove`, `set_mode`) are made by `guard.forget.index.ForgetIndex` on the same single reader thread the
checks run on, so a check never sees half a change and nothing takes a lock.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from guard.forget.chunkwords import ChunkWords, Hashes
from guard.forget.coverage import CoverageMap
from guard.forget.embedder import Vectors
from guard.forget.facts import WordIndex, fact_values, name_parts
from guard.forget.meaning import MeaningIndex
from guard.forget.names import NameMatcher
from guard.forget.ngrams import NgramIndex
from guard.forget.postings import Slots
from guard.forget.registry import Entry
from guard.forget.sounds import SoundMatcher
from guard.forget.vectors import Ids, VectorIndex

SEARCH_K = 8  # chunks looked at per query vector
SEARCH_CACHE = 4096  # query vectors whose search results are remembered (reader thread only: no lock)
T = TypeVar("T")
READ_CACHE = 16384  # texts whose look-ups (names, parts, values) are remembered, by digest, until entries change


class IndexView(Protocol):
    """The questions a check may ask the forget index. Call only on the index's reader thread."""

    def get(self, entry_id: str) -> Entry | None: ...
    def __len__(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...
    def search(self, queries: Vectors, k: int = SEARCH_K) -> list[dict[str, float]]: ...
    def search_meaning(
        self, queries: Vectors, languages: Sequence[str] = (), k: int = SEARCH_K
    ) -> list[dict[str, float]]: ...
    def search_chunks(self, queries: Vectors, k: int) -> list[list[tuple[str, int, float]]]: ...
    def words_found(self, chunk_ids: Sequence[int], words: Sequence[str]) -> set[str]: ...
    def words_lacking(self, entry_id: str, words: Sequence[str]) -> set[str]: ...
    def chunks_holding(
        self, entry_id: str, words: Sequence[str], k: int, asked: Sequence[str] = (), least: int = 2
    ) -> list[int]: ...
    def hashes_lacking(self, entry_id: str, held: Hashes) -> int: ...
    def details_known(self, entry_id: str) -> int: ...
    def details_among(self, entry_id: str, words: Sequence[str]) -> set[str]: ...
    @property
    def multilingual(self) -> bool: ...
    def find_names(self, text: str) -> set[str]: ...
    def find_verbatim(self, text: str) -> dict[str, int]: ...
    def find_parts(self, text: str) -> dict[str, set[str]]: ...
    def find_values(self, text: str) -> dict[str, set[str]]: ...
    @property
    def stamp(self) -> object: ...
    def parts_of(self, entry_id: str) -> frozenset[str]: ...


class MemoryIndex:
    def __init__(self, dim: int, *, ngram_words: int, typo_min_chars: int, meaning: MeaningIndex | None = None) -> None:
        self.vectors = VectorIndex(dim)
        self.meaning = meaning  # the same sentences in a multilingual model's space (None: English only)
        self.names = NameMatcher(typo_min_chars)
        self.sounds = SoundMatcher()  # the same names by sound, across scripts
        self.ngrams = NgramIndex(ngram_words)
        self.parts = WordIndex(min_shared=3)  # the words of each entry's names (a surname alone)
        self.values = WordIndex(keep_words=False)  # each entry's fact values
        self.words = ChunkWords()  # the content words of each chunk and entry (an answer is read against them)
        self.coverage = CoverageMap()  # entries weight-edited models have forgotten by themselves
        # chunk id -> entry slot (-1: none), a flat array: a dict would cost ~100 bytes a chunk
        self._chunk_slot: npt.NDArray[np.int32] = np.full(1024, -1, dtype=np.int32)
        self._slots = Slots()
        self._entries: dict[str, Entry] = {}
        self.version = 0  # the registry version these structures reflect (what this replica enforces)
        self._changes = 0  # entries added or removed: remembered searches are dropped
        self._searches: OrderedDict[bytes, dict[str, float]] = OrderedDict()
        self._searched: tuple[int, int, int] = (-1, 0, 0)
        self._reads: OrderedDict[bytes, object] = OrderedDict()  # (look-up, text) digest -> its answer
        self._read = -1  # the `_changes` the remembered look-ups reflect
        self._slot_chunks: dict[int, list[Ids]] = {}  # slot -> its chunk ids, in runs as mapped (`_chunks_of`)

    # -- reads -------------------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chunk_count(self) -> int:
        return len(self.vectors)

    def find_names(self, text: str) -> set[str]:
        return set(self._remembered("names", text, lambda: frozenset(self.names.find(text) | self.sounds.find(text))))

    def find_verbatim(self, text: str) -> dict[str, int]:
        return self.ngrams.find(text)

    def find_parts(self, text: str) -> dict[str, set[str]]:
        return {e: set(w) for e, w in self._remembered("parts", text, lambda: self.parts.find(text)).items()}

    def find_values(self, text: str) -> dict[str, set[str]]:
        return {e: set(w) for e, w in self._remembered("values", text, lambda: self.values.find(text)).items()}

    def _remembered(self, what: str, text: str, look: Callable[[], T]) -> T:
        """A look-up's answer for a text, remembered until entries change: a system prompt or a document is
        re-sent with every request (the keys are digests: no text is held)."""
        if self._read != self._changes:
            self._reads.clear()
            self._read = self._changes
        key = hashlib.blake2b(text.encode(), digest_size=16, person=what.encode()).digest()
        if key in self._reads:
            self._reads.move_to_end(key)
            return cast(T, self._reads[key])
        answer = self._reads[key] = look()
        while len(self._reads) > READ_CACHE:
            self._reads.popitem(last=False)
        return answer

    @property
    def stamp(self) -> object:
        """Changes whenever an answer of this view may change: entries added or removed, the vectors rebuilt or
        grown (what was read in a text at one stamp holds while it stays)."""
        meaning = len(self.meaning) if self.meaning is not None else 0
        return (self._changes, len(self._entries), id(self.vectors), len(self.vectors), meaning)

    def parts_of(self, entry_id: str) -> frozenset[str]:
        return self.parts.of(entry_id)

    def search(self, queries: Vectors, k: int = SEARCH_K) -> list[dict[str, float]]:
        """For each query, the best score per entry among its top-k chunks. Remembered until the index changes:
        a chat re-sends its earlier turns, a deployment its system prompt (an IVF search at 1e6 chunks is ~1 ms)."""
        stamp = (self._changes, id(self.vectors), len(self.vectors))
        if stamp != self._searched:
            self._searches.clear()
            self._searched = stamp
        keys = [
            hashlib.blake2b(row.tobytes(), digest_size=16, salt=k.to_bytes(2, "little")).digest()
            for row in np.ascontiguousarray(queries, dtype=np.float32)
        ]
        found = [self._searches.get(key) for key in keys]
        missing = [row for row, hit in enumerate(found) if hit is None]
        if missing:
            fresh = self._best(*self.vectors.search(queries[missing], k))
            for row, best in zip(missing, fresh, strict=True):
                found[row] = self._searches[keys[row]] = best
            while len(self._searches) > SEARCH_CACHE:
                self._searches.popitem(last=False)
        return [dict(best or {}) for best in found]

    def search_meaning(
        self, queries: Vectors, languages: Sequence[str] = (), k: int = SEARCH_K
    ) -> list[dict[str, float]]:
        """The same, in the multilingual model's space (queries embedded by it; `languages`: each query's
        `guard.forget.meaning.language` key, "" or missing for none)."""
        if self.meaning is None:
            return [{} for _ in range(len(queries))]
        keys = list(languages) + [""] * (len(queries) - len(languages))
        return self._best(*self.meaning.search(queries, keys, k))

    def search_chunks(self, queries: Vectors, k: int) -> list[list[tuple[str, int, float]]]:
        """For each query, its top-k chunks as (entry id, chunk id, score), best first."""
        scores, ids = self.vectors.search(queries, k)
        out: list[list[tuple[str, int, float]]] = []
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
            row: list[tuple[str, int, float]] = []
            for score, chunk_id in zip(row_scores, row_ids, strict=True):
                slot = int(self._chunk_slot[chunk_id]) if 0 <= chunk_id < len(self._chunk_slot) else -1
                entry_id = self._slots.key(slot) if slot >= 0 else None
                if entry_id is not None:
                    row.append((entry_id, chunk_id, float(score)))
            out.append(row)
        return out

    def words_found(self, chunk_ids: Sequence[int], words: Sequence[str]) -> set[str]:
        """Which of the words any of the chunks uses."""
        return self.words.found(chunk_ids, words)

    def chunks_holding(
        self, entry_id: str, words: Sequence[str], k: int, asked: Sequence[str] = (), least: int = 2
    ) -> list[int]:
        """The entry's `k` chunks that use most of the words (`least` at least), then most of `asked`."""
        slot = self._slots.get(entry_id)
        if slot is None or len(words) < least:
            return []
        ids = self._chunks_of(slot)
        held = self.words.counts(ids, words)
        rank = held * (len(asked) + 1) + (self.words.counts(ids, asked) if asked else 0)
        best = np.argsort(-rank, kind="stable")[:k]
        return [int(ids[i]) for i in best if held[i] >= max(least, 1)]

    def _chunks_of(self, slot: int) -> Ids:
        """An entry's chunk ids, ascending, from the per-slot lists kept as chunks are mapped: a scan of the whole
        chunk -> slot array per entry looked up costs ~70 times more at a million chunks (`bench.chunks_of`)."""
        parts = self._slot_chunks.get(slot)
        if not parts:
            return np.zeros(0, dtype=np.int64)
        if len(parts) > 1:
            parts[:] = [np.sort(np.concatenate(parts))]
        ids = parts[0]
        mine: Ids = ids[self._chunk_slot[ids] == slot]  # a chunk mapped again to another slot is no longer its
        return mine

    def words_lacking(self, entry_id: str, words: Sequence[str]) -> set[str]:
        """Which of the words neither the entry's chunks nor its names use."""
        return self.words.lacks(entry_id, words)

    def hashes_lacking(self, entry_id: str, held: Hashes) -> int:
        """How many of the hashed words (`guard.forget.chunkwords.hashes`) neither the entry's chunks nor its
        names use."""
        return self.words.lacking(entry_id, held)

    def details_among(self, entry_id: str, words: Sequence[str]) -> set[str]:
        """Which of the words are the entry's proper nouns or numbers (`guard.forget.chunkwords.details`)."""
        return self.words.details_among(entry_id, words)

    def details_known(self, entry_id: str) -> int:
        """How many proper nouns and numbers the entry's documents give (`guard.forget.chunkwords.details`)."""
        return self.words.known_details(entry_id)

    @property
    def multilingual(self) -> bool:
        return self.meaning is not None

    def _best(self, scores: npt.NDArray[np.float32], ids: Ids) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            best: dict[str, float] = {}
            for score, chunk_id in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                slot = int(self._chunk_slot[chunk_id]) if 0 <= chunk_id < len(self._chunk_slot) else -1
                entry_id = self._slots.key(slot) if slot >= 0 else None
                if entry_id is not None and score > best.get(entry_id, -2.0):
                    best[entry_id] = float(score)
            out.append(best)
        return out

    def known_chunks(self) -> Ids:
        """The chunk ids held right now (what a background rebuild must take)."""
        return np.flatnonzero(self._chunk_slot >= 0).astype(np.int64)

    # -- changes (on the reader thread only) -------------------------------------------------------------

    def load_entry(self, entry: Entry) -> int:
        """Record an entry (start-up): its slot; names and chunks are loaded in bulk by the caller."""
        self._entries[entry.id] = entry
        self.parts.add(entry.id, name_parts(_names(entry)))
        self.words.add_names(entry.id, _names(entry))
        return self._slots.number(entry.id)

    def load_documents(self, documents: list[tuple[str, str]]) -> None:
        """(entry id, its documents joined) loaded in bulk (start-up): n-grams and fact values."""
        self.ngrams.bulk_add(documents)
        self.values.bulk_add(
            (e, fact_values([doc], _names(self._entries[e]) if e in self._entries else ())) for e, doc in documents
        )

    def slot_of(self, entry_id: str) -> int:
        return self._slots.number(entry_id)

    def add(self, entry: Entry, ids: list[int], chunks: list[str], vectors: Vectors) -> Ids | None:
        """Add an entry; returns its chunk ids (None when it was already here: a reconcile raced a replay)."""
        if entry.id in self._entries:
            return None
        chunk_ids = np.array(ids, dtype=np.int64)
        self.map_chunks(chunk_ids, [self._slots.number(entry.id)] * len(ids))
        self.vectors.add(chunk_ids, vectors)
        self.words.add([entry.id] * len(ids), ids, chunks)
        self.words.add_names(entry.id, _names(entry))
        if self.meaning is not None:
            self.meaning.add(chunk_ids, chunks)
        self.names.add(entry.id, _names(entry))
        self.sounds.add(entry.id, _names(entry))
        self.ngrams.add(entry.id, [" ".join(chunks)])
        self.parts.add(entry.id, name_parts(_names(entry)))
        self.values.add(entry.id, fact_values(chunks, _names(entry)))
        self._entries[entry.id] = entry
        return chunk_ids

    def remove(self, entry_id: str) -> Ids:
        """Remove an entry; returns the chunk ids it had."""
        self._changes += 1
        slot = self._slots.drop(entry_id)
        chunk_ids = np.zeros(0, dtype=np.int64)
        if slot is not None:
            chunk_ids = np.flatnonzero(self._chunk_slot == slot).astype(np.int64)
            self.vectors.remove(chunk_ids)
            if self.meaning is not None:
                self.meaning.remove(chunk_ids)
            self._chunk_slot[chunk_ids] = -1
            self._slot_chunks.pop(slot, None)
        self.words.remove(entry_id, chunk_ids)
        self.names.remove(entry_id)
        self.sounds.remove(entry_id)
        self.ngrams.remove(entry_id)
        self.parts.remove(entry_id)
        self.values.remove(entry_id)
        self.coverage.drop_entry(entry_id)
        self._entries.pop(entry_id, None)
        return chunk_ids

    def set_mode(self, entry: Entry) -> None:
        if entry.id in self._entries:
            self._entries[entry.id] = entry

    def map_chunks(self, ids: Ids, slots: list[int]) -> None:
        self._changes += 1
        if not len(ids):
            return
        top = int(ids.max())
        if top >= len(self._chunk_slot):
            grown = np.full(max(top + 1, 2 * len(self._chunk_slot)), -1, dtype=np.int32)
            grown[: len(self._chunk_slot)] = self._chunk_slot
            self._chunk_slot = grown
        mapped = np.array(slots, dtype=np.int32)
        self._chunk_slot[ids] = mapped
        order = np.lexsort((ids, mapped))  # by slot, then chunk id: each slot's run ascending
        by_slot, ordered = mapped[order], ids[order].astype(np.int64)
        starts = np.flatnonzero(np.diff(by_slot)) + 1
        for slot, run in zip(by_slot[np.r_[0, starts]].tolist(), np.split(ordered, starts), strict=True):
            self._slot_chunks.setdefault(slot, []).append(run)


def _names(entry: Entry) -> tuple[str, ...]:
    return (entry.subject, *entry.aliases)
