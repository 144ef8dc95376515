"""ForgetIndex: the registry plus the in-memory index every request reads, put together.

Its parts, one job each:
- `view.MemoryIndex`: the in-memory structures; the checks read them through `IndexView`;
- `workers.Workers`: the reader, writer and upkeep threads (every read and change of the in-memory index runs
  on the one reader thread, so a check never sees half an update and never takes a lock);
- `sync.Sync`: changes applied strictly in registry-version order, ours and other replicas';
- `upkeep.Upkeep`: loading, background faiss rebuilds, postings compaction.

This module keeps the write API (`add`, `remove`, `set_mode`): commit to the registry, then enforce here before
the caller is answered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from guard.forget.embedder import Embedder
from guard.forget.meaning import MeaningIndex
from guard.forget.registry import QA, Coverage, Entry, Registry, RegistryMismatch
from guard.forget.sync import Sync
from guard.forget.upkeep import Upkeep
from guard.forget.view import IndexView, MemoryIndex
from guard.forget.workers import Workers
from guard.text import sentences

P = ParamSpec("P")
T = TypeVar("T")


class ForgetIndex:
    def __init__(
        self,
        registry: Registry,
        embedder: Embedder,
        workers: Workers,
        *,
        ngram_words: int,
        typo_min_chars: int,
        meaning: MeaningIndex | None = None,
    ) -> None:
        self.registry = registry
        self.embedder = embedder
        self.workers = workers
        self.memory = MemoryIndex(embedder.dim, ngram_words=ngram_words, typo_min_chars=typo_min_chars, meaning=meaning)
        self.upkeep = Upkeep(self.memory, registry, workers, embedder.dim)
        self.sync = Sync(self.memory, registry, workers, self.upkeep, embedder.dim)

    @classmethod
    async def open(
        cls,
        registry: Registry,
        embedder: Embedder,
        *,
        ngram_words: int,
        typo_min_chars: int,
        meaning: MeaningIndex | None = None,
    ) -> ForgetIndex:
        """Open the registry and build the in-memory structures from a consistent snapshot of it."""
        await registry.open()
        other = await registry.claim_embedder(embedder.space)
        if other is not None:
            await registry.close()
            raise RegistryMismatch(
                f"the forget registry's vectors were written by embedder {other!r}, this guard runs {embedder.space!r}:"
                f" its scores would mean nothing. Run the guard with {other!r}, or re-register the entries into a new"
                " index with this one."
            )
        workers = Workers(asyncio.get_running_loop())
        index = cls(
            registry, embedder, workers, ngram_words=ngram_words, typo_min_chars=typo_min_chars, meaning=meaning
        )
        try:
            await workers.background(index.upkeep.load)
        except BaseException:
            await index.aclose()
            raise
        return index

    async def aclose(self) -> None:
        self.workers.shutdown()
        if self.memory.meaning is not None:
            self.memory.meaning.cache.close()
        await self.registry.close()

    @property
    def view(self) -> IndexView:
        """What the checks read (on the reader thread: `await index.run(check, index.view, ...)`)."""
        return self.memory

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the reader thread, where it may read the in-memory structures consistently."""
        return await self.workers.read(fn, *args, **kwargs)

    # -- writes ------------------------------------------------------------------------------------------

    async def add(
        self,
        subject: str,
        aliases: Sequence[str],
        documents: Sequence[str],
        policy: str | None,
        mode: str = "enforce",
        qa: Sequence[QA] = (),
    ) -> Entry:
        """Commit a new entry to the registry, then enforce it here before returning. The answers of its
        question/answer pairs are documents too; the pairs are kept whole for the export."""
        documents = [*documents, *(answer for _, answer in qa)]
        chunks = [s for doc in documents for s in sentences(doc)]
        meaning = self.memory.meaning
        if meaning is None:
            vectors = await self.workers.write(self.embedder.embed, chunks)
        else:  # both models at once, on two threads; the multilingual vectors land in its cache for the add below
            vectors, _ = await asyncio.gather(
                self.workers.write(self.embedder.embed, chunks), self.workers.background(lambda: meaning.embed(chunks))
            )
        entry_id = "fg-" + uuid.uuid4().hex[:20]
        entry, ids, version = await self.registry.add(
            entry_id, subject, aliases, policy, len(documents), chunks, vectors, mode, qa
        )
        await self.sync.added(entry, ids, chunks, vectors, version)
        return entry

    async def remove(self, entry_id: str) -> bool:
        version = await self.registry.remove(entry_id)
        if version is None:
            return False
        await self.sync.removed(entry_id, version)
        return True

    async def set_mode(self, entry_id: str, mode: str) -> Entry | None:
        changed = await self.registry.set_mode(entry_id, mode)
        if changed is None:
            return None
        entry, version = changed
        await self.sync.mode_set(entry, version)
        return entry

    async def set_coverage(self, model: str, put: Sequence[Coverage], drop: Sequence[str] = ()) -> int:
        """Record and revoke a model's coverage (one registry change), enforced here before returning: the new
        version."""
        rows, version = await self.registry.set_coverage(model, put, drop)
        await self.sync.coverage_set(rows, version)
        return version

    # -- following other replicas -----------------------------------------------------------------------------

    async def catch_up(self) -> int:
        return await self.sync.catch_up()

    async def follow(self, poll_s: float, compact_keep: int = 0) -> None:
        await self.sync.follow(poll_s, compact_keep)

    async def settle(self) -> None:
        """Wait until the upkeep started so far (rebuild, compaction) is installed (tests, benchmarks)."""
        while True:
            await self.workers.background(lambda: None)
            await self.run(lambda: None)
            if not await self.run(self.upkeep.busy):
                return

    # -- state (cheap reads, safe from the event loop) --------------------------------------------------------

    @property
    def version(self) -> int:
        """The registry version this replica enforces."""
        return self.memory.version

    @property
    def reachable(self) -> bool:
        return self.sync.reachable

    @property
    def synced_at(self) -> float:
        return self.sync.synced_at

    @property
    def upkeep_errors(self) -> int:
        return self.upkeep.errors

    def entries(self) -> list[Entry]:
        return self.memory.entries()

    def get(self, entry_id: str) -> Entry | None:
        return self.memory.get(entry_id)

    def __len__(self) -> int:
        return len(self.memory)

    @property
    def chunk_count(self) -> int:
        return self.memory.chunk_count
