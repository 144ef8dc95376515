"""Slow upkeep of the in-memory index, off the request path: loading it, rebuilding the faiss index when the
number of chunks calls for another kind, compacting the n-gram and name postings.

The heavy part runs on the upkeep thread; the result is swapped in on the reader thread, with the vector
changes made meanwhile (recorded in a journal) replayed onto it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np

from guard.forget.embedder import Vectors
from guard.forget.postings import Frozen, Postings
from guard.forget.registry import Registry, Snapshot
from guard.forget.vectors import TRAIN_PER_LIST, Ids, VectorIndex, choose
from guard.forget.view import MemoryIndex
from guard.forget.workers import Workers

log = logging.getLogger("guard.index")


class Upkeep:
    def __init__(self, memory: MemoryIndex, registry: Registry, workers: Workers, dim: int) -> None:
        self.memory = memory
        self.registry = registry
        self.workers = workers
        self.dim = dim
        self.rebuilding = False
        self._journal: list[tuple[str, Ids, Vectors | None]] = []  # vector changes made during a rebuild
        self.errors = 0

    # -- start-up (upkeep thread, before any request) -------------------------------------------------------

    def load(self) -> None:
        with self.workers.snapshot(self.registry) as snap:
            self.memory.version = self.workers.call(snap.version())
            entries = self.workers.call(snap.entries())
            for entry in entries:
                self.memory.load_entry(entry)
            self.memory.names.add_many((e.id, (e.subject, *e.aliases)) for e in entries)
            self.memory.sounds.add_many((e.id, (e.subject, *e.aliases)) for e in entries)
            self.memory.coverage.replace(self.workers.call(snap.coverage()))
            self.memory.vectors = self._build_vectors(snap, self.workers.call(snap.chunk_count()), with_text=True)

    def _build_vectors(self, snap: Snapshot, n: int, with_text: bool, only: Ids | None = None) -> VectorIndex:
        """A vector index of the right kind for n chunks, filled from the registry (and the n-grams, at start).

        `only`: the chunk ids to take (the reader's view when a rebuild started; later changes are replayed).
        """
        plan = choose(n)
        sample = self.workers.call(snap.sample_vectors(plan.nlist * TRAIN_PER_LIST)) if plan.nlist else None
        documents: list[tuple[str, str]] = []
        memory = self.memory

        def batches() -> Iterator[tuple[Ids, Vectors]]:
            current: tuple[str, list[str]] | None = None
            for batch in self.workers.iterate(snap.chunks(text=with_text)):
                ids = np.array([c.id for c in batch], dtype=np.int64)
                if only is not None:
                    keep = np.isin(ids, only)
                    batch = [c for c, k in zip(batch, keep.tolist(), strict=True) if k]
                    ids = ids[keep]
                    if not len(ids):
                        continue
                if with_text:
                    memory.map_chunks(ids, [memory.slot_of(c.entry_id) for c in batch])
                    memory.words.add([c.entry_id for c in batch], ids.tolist(), [c.text for c in batch])
                    if memory.meaning is not None:  # start-up: cached, or embedded now
                        memory.meaning.add(ids, [c.text for c in batch])
                    for c in batch:  # an entry's chunks are contiguous: join them as one document
                        if current is None or current[0] != c.entry_id:
                            if current is not None:
                                documents.append((current[0], " ".join(current[1])))
                            current = (c.entry_id, [])
                        current[1].append(c.text)
                    if len(documents) > 1000:
                        memory.load_documents(documents)
                        documents.clear()
                yield ids, np.stack([c.vector for c in batch])
            if current is not None:
                documents.append((current[0], " ".join(current[1])))

        index = VectorIndex.build(self.dim, n, sample, batches())
        memory.load_documents(documents)
        return index

    # -- after each change (reader thread) ------------------------------------------------------------------

    def changed(self, op: str, ids: Ids, vectors: Vectors | None) -> None:
        """Record a vector change for a rebuild in progress, and start the upkeep that is due."""
        if self.rebuilding and len(ids):
            self._journal.append((op, ids, vectors))
        memory = self.memory
        if not self.rebuilding and (not memory.vectors.plan.fits(len(memory.vectors)) or memory.vectors.drifted):
            if memory.vectors.drifted:
                log.info(
                    "vector index drifted: rebuilding",
                    extra={"merged": memory.vectors.merged, "outliers": memory.vectors.outliers},
                )
            self.rebuilding = True
            self._journal = []
            self.workers.upkeep.submit(self._rebuild_vectors, memory.known_chunks())
        for postings in self.postings():
            if postings.needs_compaction():
                self.workers.upkeep.submit(self._compact, postings, postings.freeze())

    def busy(self) -> bool:
        """Is upkeep under way (reader thread)?"""
        return self.rebuilding or any(p.frozen for p in self.postings())

    def postings(self) -> tuple[Postings, ...]:
        """The compact postings that compaction keeps lean."""
        m = self.memory
        return (m.ngrams.postings, m.names.fuzzy, m.sounds.fuzzy, m.values.postings, m.parts.postings)

    # -- the heavy part (upkeep thread) -----------------------------------------------------------------------

    def _compact(self, postings: Postings, frozen: Frozen) -> None:
        try:
            built = postings.build(frozen)
        except Exception:  # upkeep must not die silently: the postings keep working as they are; it is counted
            self.errors += 1
            log.exception("postings compaction failed")
            self.workers.reader.submit(postings.thaw, frozen)
            return
        self.workers.reader.submit(postings.install, frozen, built)

    def _rebuild_vectors(self, known: Ids) -> None:
        started = time.perf_counter()
        try:
            with self.workers.snapshot(self.registry) as snap:
                fresh = self._build_vectors(snap, max(len(known), 1), with_text=False, only=known)
        except Exception:  # the current index keeps serving; the next change tries again
            self.errors += 1
            log.exception("vector index rebuild failed")
            self.workers.reader.submit(self._abandon_rebuild)
            return
        self.workers.reader.submit(self._install_vectors, fresh, started).result()

    def _abandon_rebuild(self) -> None:
        self.rebuilding = False
        self._journal = []

    def _install_vectors(self, fresh: VectorIndex, started: float) -> None:
        """Replay the changes made since the rebuild started (`fresh` holds exactly the chunks known then)."""
        for op, ids, vectors in self._journal:
            if op == "add":
                assert vectors is not None
                fresh.add(ids, vectors)
            else:
                fresh.remove(ids)
        old = self.memory.vectors
        self.memory.vectors = fresh
        self._journal = []
        self.rebuilding = False
        log.info(
            "vector index rebuilt",
            extra={"from": old.kind, "to": fresh.kind, "chunks": len(fresh), "seconds": time.perf_counter() - started},
        )
