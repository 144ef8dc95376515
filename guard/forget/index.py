"""ForgetIndex: the registry plus the in-memory structures every request reads.

Concurrency: every read of the in-memory structures (checks) and every change to them runs on one worker
thread, so a check never sees half an update and never takes a lock. The slow part of a write — embedding the
documents — runs on a second thread and the registry commit is awaited, so checks never wait for either.
Upkeep that takes seconds at a million chunks — loading, rebuilding the faiss index for a new size, compacting
the n-gram and name postings — runs on a third and is swapped in on the first, with the changes made meanwhile
replayed.

Replicas: the in-memory structures reflect one registry version (`version`). Changes are applied strictly in
version order under `_sync`, whether they were made here (applied from the data in hand) or by another
replica (read back from the registry's change log); `follow` keeps up with other replicas on every
notification and every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from guard.checks.lexical import NameMatcher
from guard.checks.verbatim import NgramIndex
from guard.forget.chunking import sentences
from guard.forget.embedder import Embedder, Vectors
from guard.forget.postings import Frozen, Postings, Slots
from guard.forget.registry import Change, Chunk, Entry, Registry, Snapshot
from guard.forget.vectors import TRAIN_PER_LIST, Ids, VectorIndex, choose, pin_threads

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("guard.index")


class ForgetIndex:
    def __init__(self, registry: Registry, embedder: Embedder, *, ngram_words: int, typo_min_chars: int) -> None:
        self.registry = registry
        self.embedder = embedder
        self.vectors = VectorIndex(embedder.dim)
        self.names = NameMatcher(typo_min_chars)
        self.ngrams = NgramIndex(ngram_words)
        # chunk id -> entry slot (-1: none), a flat array: a dict would cost ~100 bytes a chunk
        self._chunk_slot: npt.NDArray[np.int32] = np.full(1024, -1, dtype=np.int32)
        self._slots = Slots()
        self._entries: dict[str, Entry] = {}
        self.version = 0  # the registry version the in-memory structures reflect (what this replica enforces)
        self.reachable = True  # did the last exchange with the registry succeed
        self.synced_at = time.time()  # when this replica last knew it was at the registry's latest version
        self._sync = asyncio.Lock()  # changes are applied one at a time, in version order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="guard-check", initializer=pin_threads)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="guard-write")
        # slow upkeep off both: rebuilding the faiss index for a new size, compacting the postings
        self._upkeep = ThreadPoolExecutor(1, thread_name_prefix="guard-upkeep")
        self._rebuilding = False
        self._journal: list[tuple[str, Ids, Vectors | None]] = []  # vector changes made during a rebuild
        self.upkeep_errors = 0

    @classmethod
    async def open(
        cls, registry: Registry, embedder: Embedder, *, ngram_words: int, typo_min_chars: int
    ) -> ForgetIndex:
        """Open the registry and build the in-memory structures from a consistent snapshot of it."""
        await registry.open()
        index = cls(registry, embedder, ngram_words=ngram_words, typo_min_chars=typo_min_chars)
        index._loop = asyncio.get_running_loop()
        try:
            await index._loop.run_in_executor(index._upkeep, index._load)
        except BaseException:
            await index.aclose()
            raise
        return index

    # -- the registry from worker threads -------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the event loop from a worker thread (the registry's API is async)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Snapshot]:
        manager: AbstractAsyncContextManager[Snapshot] = self.registry.snapshot()
        snap = self._call(_enter(manager))
        try:
            yield snap
        finally:
            self._call(manager.__aexit__(None, None, None))

    def _iterate(self, batches: AsyncIterator[list[Chunk]]) -> Iterator[list[Chunk]]:
        try:
            while True:
                try:
                    yield self._call(_next(batches))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(batches, "aclose", None)
            if close is not None:
                self._call(close())

    def _load(self) -> None:
        with self._snapshot() as snap:
            self.version = self._call(snap.version())
            entries = self._call(snap.entries())
            for entry in entries:
                self._entries[entry.id] = entry
                self._slots.number(entry.id)
            self.names.add_many((e.id, (e.subject, *e.aliases)) for e in entries)
            self.vectors = self._build_vectors(snap, self._call(snap.chunk_count()), with_text=True)

    def _build_vectors(self, snap: Snapshot, n: int, with_text: bool, only: Ids | None = None) -> VectorIndex:
        """A vector index of the right kind for n chunks, filled from the registry (and the n-grams, at start).

        `only`: the chunk ids to take (the reader's view when a rebuild started; later changes are replayed).
        """
        plan = choose(n)
        sample = self._call(snap.sample_vectors(plan.nlist * TRAIN_PER_LIST)) if plan.nlist else None
        documents: list[tuple[str, str]] = []

        def batches() -> Iterator[tuple[Ids, Vectors]]:
            current: tuple[str, list[str]] | None = None
            for batch in self._iterate(snap.chunks(text=with_text)):
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

    async def aclose(self) -> None:
        self._upkeep.shutdown(wait=True, cancel_futures=True)
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        await self.registry.close()

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
        """Commit a new entry to the registry, then enforce it here before returning."""
        loop = asyncio.get_running_loop()
        chunks = [s for doc in documents for s in sentences(doc)]
        vectors = await loop.run_in_executor(self._writer, self.embedder.embed, chunks)
        entry_id = "fg-" + uuid.uuid4().hex[:20]
        entry, ids, version = await self.registry.add(
            entry_id, subject, aliases, policy, len(documents), chunks, vectors, mode
        )
        await self._apply_through(version, lambda: self.run(self._apply_add, entry, ids, chunks, vectors, version))
        return entry

    async def remove(self, entry_id: str) -> bool:
        version = await self.registry.remove(entry_id)
        if version is None:
            return False
        await self._apply_through(version, lambda: self.run(self._apply_remove, entry_id, version))
        return True

    async def set_mode(self, entry_id: str, mode: str) -> Entry | None:
        changed = await self.registry.set_mode(entry_id, mode)
        if changed is None:
            return None
        entry, version = changed
        await self._apply_through(version, lambda: self.run(self._apply_mode, entry, version))
        return entry

    # -- following the registry -------------------------------------------------------------------------------

    async def _apply_through(self, version: int, local: Callable[[], Awaitable[None]]) -> None:
        """Apply every change up to our own write at `version` in order; ours from the data in hand."""
        async with self._sync:
            if self.version >= version:
                return
            if self.version < version - 1:  # another replica changed the registry first: replay that
                await self._replay([c for c in await self.registry.changes_since(self.version) if c.version < version])
            if self.version == version - 1:
                await local()
            else:  # the change log has a gap (should not happen): compare entry by entry
                await self._reconcile()

    async def catch_up(self) -> int:
        """Apply the changes other processes made since our version; returns how many."""
        async with self._sync:
            changes = await self.registry.changes_since(self.version)
            await self._replay(changes)
            if changes and self.version != changes[-1].version:
                await self._reconcile()
            self.reachable, self.synced_at = True, time.time()
            return len(changes)

    async def _replay(self, changes: list[Change]) -> None:
        for change in changes:
            if change.version != self.version + 1:
                return  # a gap: the caller reconciles
            if change.op == "add":
                await self._apply_fetched(change.entry_id, change.version)
            elif change.op == "remove":
                await self.run(self._apply_remove, change.entry_id, change.version)
            elif change.op == "mode":
                found = await self.registry.entries(change.entry_id)
                if found:
                    await self.run(self._apply_mode, found[0], change.version)
                else:  # removed since; its removal comes later in the log
                    await self.run(self._set_version, change.version)
            else:
                raise ValueError(f"unknown change {change.op!r} at version {change.version}")

    async def _apply_fetched(self, entry_id: str, version: int) -> None:
        found = await self.registry.entry_chunks(entry_id)
        if found is None:  # removed since; its removal comes later in the log
            await self.run(self._set_version, version)
            return
        entry, chunks = found
        vectors = np.stack([c.vector for c in chunks]) if chunks else np.zeros((0, self.embedder.dim), dtype=np.float32)
        ids = [c.id for c in chunks]
        await self.run(self._apply_add, entry, ids, [c.text for c in chunks], vectors, version)

    async def _reconcile(self) -> None:
        """Fallback when the change log cannot be replayed: diff the entries, then take the registry's version."""
        version = await self.registry.version()
        remote = {e.id: e for e in await self.registry.entries()}
        local = {e.id: e for e in await self.run(self.entries)}
        log.warning("registry change log has a gap; reconciling entry by entry", extra={"version": version})
        for entry_id in local.keys() - remote.keys():
            await self.run(self._apply_remove, entry_id, self.version)
        for entry_id in remote.keys() - local.keys():
            await self._apply_fetched(entry_id, self.version)
        for entry_id in remote.keys() & local.keys():
            if remote[entry_id].mode != local[entry_id].mode:
                await self.run(self._apply_mode, remote[entry_id], self.version)
        await self.run(self._set_version, version)

    async def follow(self, poll_s: float) -> None:
        """Keep up with other replicas until cancelled: on every registry notification and every `poll_s`."""

        async def listen() -> None:
            async for _ in self.registry.notifications():
                await self._catch_up_logged()

        async def poll() -> None:
            while True:
                await asyncio.sleep(poll_s)
                await self._catch_up_logged()

        await asyncio.gather(listen(), poll())

    async def _catch_up_logged(self) -> None:
        try:
            applied = await self.catch_up()
        except Exception as exc:  # the registry is down: keep enforcing what we have, retry on the next tick
            if self.reachable:
                log.warning("registry unreachable; enforcing version %d until it is back", self.version,
                            extra={"error": type(exc).__name__})  # fmt: skip
            self.reachable = False
            return
        if applied:
            log.info("caught up with the registry", extra={"changes": applied, "version": self.version})

    # -- changes to the in-memory structures (on the reader thread) ------------------------------------------

    def _set_version(self, version: int) -> None:
        self.version = version

    def _apply_add(self, entry: Entry, ids: list[int], chunks: list[str], vectors: Vectors, version: int) -> None:
        self.version = version
        if entry.id in self._entries:  # already here (a reconcile raced a replay): nothing to add twice
            return
        chunk_ids = np.array(ids, dtype=np.int64)
        self._map_chunks(chunk_ids, [self._slots.number(entry.id)] * len(ids))
        self.vectors.add(chunk_ids, vectors)
        if self._rebuilding:
            self._journal.append(("add", chunk_ids, vectors))
        self.names.add(entry.id, (entry.subject, *entry.aliases))
        self.ngrams.add(entry.id, [" ".join(chunks)])
        self._entries[entry.id] = entry
        self._upkeep_if_due()

    def _apply_remove(self, entry_id: str, version: int) -> None:
        self.version = version
        slot = self._slots.drop(entry_id)
        if slot is not None:
            chunk_ids = np.flatnonzero(self._chunk_slot == slot).astype(np.int64)
            self.vectors.remove(chunk_ids)
            if self._rebuilding:
                self._journal.append(("remove", chunk_ids, None))
            self._chunk_slot[chunk_ids] = -1
        self.names.remove(entry_id)
        self.ngrams.remove(entry_id)
        self._entries.pop(entry_id, None)
        self._upkeep_if_due()

    def _apply_mode(self, entry: Entry, version: int) -> None:
        self.version = version
        if entry.id in self._entries:
            self._entries[entry.id] = entry

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
            with self._snapshot() as snap:
                fresh = self._build_vectors(snap, max(len(known), 1), with_text=False, only=known)
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


async def _enter(manager: AbstractAsyncContextManager[T]) -> T:
    return await manager.__aenter__()


async def _next(batches: AsyncIterator[T]) -> T:
    return await batches.__anext__()
