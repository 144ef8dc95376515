"""ForgetIndex: the registry plus the in-memory structures every request reads.

Concurrency: every read of the in-memory structures (checks) and every change to them runs on one worker
thread, so a check never sees half an update and never takes a lock. The slow part of a write — embedding the
documents and committing to SQLite — runs on a second thread, so checks never wait for it. Upkeep that takes
seconds at a million chunks — rebuilding the faiss index for a new size, compacting the n-gram and name
postings — runs on a third and is swapped in on the first, with the changes made meanwhile replayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from guard.checks.lexical import NameMatcher
from guard.checks.verbatim import NgramIndex
from guard.forget.chunking import sentences
from guard.forget.embedder import Embedder, Vectors
from guard.forget.postings import Frozen, Postings, Slots
from guard.forget.registry import Entry, SqliteRegistry
from guard.forget.vectors import TRAIN_PER_LIST, Ids, VectorIndex, choose, pin_threads

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY_FILE = "registry.sqlite3"

log = logging.getLogger("guard.index")


class ForgetIndex:
    def __init__(self, registry: SqliteRegistry, embedder: Embedder, *, ngram_words: int, typo_min_chars: int) -> None:
        self.registry = registry
        self.embedder = embedder
        self.vectors = VectorIndex(embedder.dim)
        self.names = NameMatcher(typo_min_chars)
        self.ngrams = NgramIndex(ngram_words)
        # chunk id -> entry slot (-1: none), a flat array: a dict would cost ~100 bytes a chunk
        self._chunk_slot: npt.NDArray[np.int32] = np.full(1024, -1, dtype=np.int32)
        self._slots = Slots()
        self._entries: dict[str, Entry] = {}
        self.version = 0  # the registry version the in-memory structures reflect
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="guard-check", initializer=pin_threads)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="guard-write")
        # slow upkeep off both: rebuilding the faiss index for a new size, compacting the postings
        self._upkeep = ThreadPoolExecutor(1, thread_name_prefix="guard-upkeep")
        self._rebuilding = False
        self._journal: list[tuple[str, Ids, Vectors | None]] = []  # vector changes made during a rebuild
        self.upkeep_errors = 0

    @classmethod
    def open(cls, index_dir: Path, embedder: Embedder, *, ngram_words: int, typo_min_chars: int) -> ForgetIndex:
        """Open (or create) the index in `index_dir` and rebuild the in-memory structures from the registry."""
        registry = SqliteRegistry(index_dir / REGISTRY_FILE, embedder.dim)
        index = cls(registry, embedder, ngram_words=ngram_words, typo_min_chars=typo_min_chars)
        index._load()
        return index

    def _load(self) -> None:
        self.version = self.registry.version()
        entries = self.registry.entries()
        for entry in entries:
            self._entries[entry.id] = entry
            self._slots.number(entry.id)
        self.names.add_many((e.id, (e.subject, *e.aliases)) for e in entries)
        self.vectors = self._build_vectors(self.registry.chunk_count(), with_text=True)

    def _build_vectors(self, n: int, with_text: bool, only: Ids | None = None) -> VectorIndex:
        """A vector index of the right kind for n chunks, filled from the registry (and the n-grams, at start).

        `only`: the chunk ids to take (the reader's view when a rebuild started; later changes are replayed).
        """
        plan = choose(n)
        sample = self.registry.sample_vectors(plan.nlist * TRAIN_PER_LIST) if plan.nlist else None
        documents: list[tuple[str, str]] = []

        def batches() -> Iterator[tuple[Ids, Vectors]]:
            current: tuple[str, list[str]] | None = None
            for batch in self.registry.chunks(text=with_text):
                ids = np.array([c.id for c in batch], dtype=np.int64)
                if only is not None:
                    keep = np.isin(ids, only)
                    batch = [c for c, k in zip(batch, keep.tolist(), strict=True) if k]
                    ids = ids[keep]
                    if not len(ids):
                        continue
                if with_text:
                    self._map_chunks(ids, [self._slots.number(c.entry_id) for c in batch])
                    for c in batch:  # an entry's chunks are contiguous: join them as one document
                        if current is None or current[0] != c.entry_id:
                            if current is not None:
                                documents.append((current[0], " ".join(current[1])))
                            current = (c.entry_id, [])
                        current[1].append(c.text)
                    if len(documents) > 1000:
                        self.ngrams.bulk_add(documents)
                        documents.clear()
                yield ids, np.stack([c.vector for c in batch])
            if current is not None:
                documents.append((current[0], " ".join(current[1])))

        index = VectorIndex.build(self.embedder.dim, n, sample, batches())
        self.ngrams.bulk_add(documents)
        return index

    def close(self) -> None:
        self._upkeep.shutdown(wait=True, cancel_futures=True)
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.registry.close()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the reader thread, where it may read the in-memory structures consistently."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, lambda: fn(*args, **kwargs))

    # -- writes ------------------------------------------------------------------------------------------

    async def add(
        self,
        subject: str,
        aliases: Sequence[str],
        documents: Sequence[str],
        policy: str | None,
        mode: str = "enforce",
    ) -> Entry:
        loop = asyncio.get_running_loop()
        chunks = [s for doc in documents for s in sentences(doc)]
        vectors = await loop.run_in_executor(self._writer, self.embedder.embed, chunks)
        entry_id = "fg-" + uuid.uuid4().hex[:20]
        entry, ids, version = await loop.run_in_executor(
            self._writer,
            lambda: (
                *self.registry.add(entry_id, subject, aliases, policy, len(documents), chunks, vectors, mode),
                self.registry.version(),
            ),
        )
        await self.run(self._apply_add, entry, ids, chunks, vectors, version)
        return entry

    def _apply_add(self, entry: Entry, ids: list[int], chunks: list[str], vectors: Vectors, version: int) -> None:
        self.version = version
        chunk_ids = np.array(ids, dtype=np.int64)
        self._map_chunks(chunk_ids, [self._slots.number(entry.id)] * len(ids))
        self.vectors.add(chunk_ids, vectors)
        if self._rebuilding:
            self._journal.append(("add", chunk_ids, vectors))
        self.names.add(entry.id, (entry.subject, *entry.aliases))
        self.ngrams.add(entry.id, [" ".join(chunks)])
        self._entries[entry.id] = entry
        self._upkeep_if_due()

    async def remove(self, entry_id: str) -> bool:
        loop = asyncio.get_running_loop()
        ids, version = await loop.run_in_executor(
            self._writer, lambda: (self.registry.remove(entry_id), self.registry.version())
        )
        if ids is None:
            return False
        await self.run(self._apply_remove, entry_id, ids, version)
        return True

    def _apply_remove(self, entry_id: str, ids: list[int], version: int) -> None:
        self.version = version
        chunk_ids = np.array(ids, dtype=np.int64)
        self.vectors.remove(chunk_ids)
        if self._rebuilding:
            self._journal.append(("remove", chunk_ids, None))
        self._map_chunks(chunk_ids, [-1] * len(ids))
        self._slots.drop(entry_id)
        self.names.remove(entry_id)
        self.ngrams.remove(entry_id)
        self._entries.pop(entry_id, None)
        self._upkeep_if_due()

    async def settle(self) -> None:
        """Wait until the upkeep started so far (rebuild, compaction) is installed (tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(self._upkeep, lambda: None)
            await self.run(lambda: None)
            if not await self.run(lambda: self._rebuilding or self._compacting()):
                return

    def _compacting(self) -> bool:
        return any(p.frozen for p in (self.ngrams.postings, self.names.fuzzy))

    # -- upkeep (started on the reader thread, heavy part on the upkeep thread) ---------------------------

    def _upkeep_if_due(self) -> None:
        if not self._rebuilding and not self.vectors.plan.fits(len(self.vectors)):
            self._rebuilding = True
            self._journal = []
            known = np.flatnonzero(self._chunk_slot >= 0).astype(np.int64)  # what this index holds right now
            self._upkeep.submit(self._rebuild_vectors, known)
        for postings in (self.ngrams.postings, self.names.fuzzy):
            if postings.needs_compaction():
                self._upkeep.submit(self._compact, postings, postings.freeze())

    def _compact(self, postings: Postings, frozen: Frozen) -> None:
        try:
            built = postings.build(frozen)
        except Exception:  # upkeep must not die silently: the postings keep working as they are; it is counted
            self.upkeep_errors += 1
            log.exception("postings compaction failed")
            self._reader.submit(postings.thaw, frozen)
            return
        self._reader.submit(postings.install, frozen, built)

    def _rebuild_vectors(self, known: Ids) -> None:
        started = time.perf_counter()
        try:
            fresh = self._build_vectors(max(len(known), 1), with_text=False, only=known)
        except Exception:  # the current index keeps serving; the next change tries again
            self.upkeep_errors += 1
            log.exception("vector index rebuild failed")
            self._reader.submit(self._abandon_rebuild)
            return
        self._reader.submit(self._install_vectors, fresh, started).result()

    def _abandon_rebuild(self) -> None:
        self._rebuilding = False
        self._journal = []

    def _install_vectors(self, fresh: VectorIndex, started: float) -> None:
        """Replay the changes made since the rebuild started (`fresh` holds exactly the chunks known then)."""
        for op, ids, vectors in self._journal:
            if op == "add":
                assert vectors is not None
                fresh.add(ids, vectors)
            else:
                fresh.remove(ids)
        old = self.vectors
        self.vectors = fresh
        self._journal = []
        self._rebuilding = False
        log.info(
            "vector index rebuilt",
            extra={"from": old.kind, "to": fresh.kind, "chunks": len(fresh), "seconds": time.perf_counter() - started},
        )

    def _map_chunks(self, ids: Ids, slots: list[int]) -> None:
        if not len(ids):
            return
        top = int(ids.max())
        if top >= len(self._chunk_slot):
            grown = np.full(max(top + 1, 2 * len(self._chunk_slot)), -1, dtype=np.int32)
            grown[: len(self._chunk_slot)] = self._chunk_slot
            self._chunk_slot = grown
        self._chunk_slot[ids] = np.array(slots, dtype=np.int32)

    async def set_mode(self, entry_id: str, mode: str) -> Entry | None:
        loop = asyncio.get_running_loop()
        entry, version = await loop.run_in_executor(
            self._writer, lambda: (self.registry.set_mode(entry_id, mode), self.registry.version())
        )
        if entry is not None:
            await self.run(self._apply_mode, entry, version)
        return entry

    def _apply_mode(self, entry: Entry, version: int) -> None:
        self.version = version
        self._entries[entry.id] = entry

    # -- reads (call through `run`) ----------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chunk_count(self) -> int:
        return len(self.vectors)

    def search(self, queries: Vectors, k: int = 8) -> list[dict[str, float]]:
        """For each query, the best score per entry among its top-k chunks."""
        scores, ids = self.vectors.search(queries, k)
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
