"""ForgetIndex: the registry plus the in-memory structures every request reads.

Concurrency: every read of the in-memory structures (checks) and every change to them runs on one worker
thread, so a check never sees half an update and never takes a lock. The slow part of a write — embedding the
documents and committing to SQLite — runs on a second thread, so checks never wait for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from guard.checks.lexical import NameMatcher
from guard.checks.verbatim import NgramIndex
from guard.forget.chunking import sentences
from guard.forget.embedder import Embedder, Vectors
from guard.forget.registry import Entry, SqliteRegistry
from guard.forget.vectors import VectorIndex

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY_FILE = "registry.sqlite3"


class ForgetIndex:
    def __init__(self, registry: SqliteRegistry, embedder: Embedder, *, ngram_words: int, typo_min_chars: int) -> None:
        self.registry = registry
        self.embedder = embedder
        self.vectors = VectorIndex(embedder.dim)
        self.names = NameMatcher(typo_min_chars)
        self.ngrams = NgramIndex(ngram_words)
        self._chunk_entry: dict[int, str] = {}
        self._entries: dict[str, Entry] = {}
        self.version = 0  # the registry version the in-memory structures reflect
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="guard-check")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="guard-write")

    @classmethod
    def open(cls, index_dir: Path, embedder: Embedder, *, ngram_words: int, typo_min_chars: int) -> ForgetIndex:
        """Open (or create) the index in `index_dir` and rebuild the in-memory structures from the registry."""
        registry = SqliteRegistry(index_dir / REGISTRY_FILE, embedder.dim)
        index = cls(registry, embedder, ngram_words=ngram_words, typo_min_chars=typo_min_chars)
        index._load()
        return index

    def _load(self) -> None:
        self.version = self.registry.version()
        texts: dict[str, list[str]] = defaultdict(list)
        for batch in self.registry.chunks():
            ids = np.array([c.id for c in batch], dtype=np.int64)
            self.vectors.add(ids, np.stack([c.vector for c in batch]))
            for c in batch:
                self._chunk_entry[c.id] = c.entry_id
                texts[c.entry_id].append(c.text)
        for entry in self.registry.entries():
            self._entries[entry.id] = entry
            self.names.add(entry.id, (entry.subject, *entry.aliases))
            self.ngrams.add(entry.id, [" ".join(texts[entry.id])])

    def close(self) -> None:
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
        self.vectors.add(np.array(ids, dtype=np.int64), vectors)
        self._chunk_entry.update(dict.fromkeys(ids, entry.id))
        self.names.add(entry.id, (entry.subject, *entry.aliases))
        self.ngrams.add(entry.id, [" ".join(chunks)])
        self._entries[entry.id] = entry

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
        self.vectors.remove(np.array(ids, dtype=np.int64))
        for i in ids:
            self._chunk_entry.pop(i, None)
        self.names.remove(entry_id)
        self.ngrams.remove(entry_id)
        self._entries.pop(entry_id, None)

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
            for score, chunk_id in zip(row_scores, row_ids, strict=True):
                entry_id = self._chunk_entry.get(int(chunk_id))
                if entry_id is not None and score > best.get(entry_id, -2.0):
                    best[entry_id] = float(score)
            out.append(best)
        return out
