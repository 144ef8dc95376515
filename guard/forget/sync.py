"""Keeping the in-memory index at the registry's version: changes are applied strictly in version order.

A change made here is applied from the data in hand; a change made by another replica is read back from the
registry's change log (`changes_since`). `follow` catches up on every registry notification and every poll; a
gap in the log falls back to comparing entry by entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from guard.forget.embedder import Vectors
from guard.forget.registry import Change, Coverage, Entry, Registry
from guard.forget.upkeep import Upkeep
from guard.forget.view import MemoryIndex
from guard.forget.workers import Workers

log = logging.getLogger("guard.index")


class Sync:
    def __init__(self, memory: MemoryIndex, registry: Registry, workers: Workers, upkeep: Upkeep, dim: int) -> None:
        self.memory = memory
        self.registry = registry
        self.workers = workers
        self.upkeep = upkeep
        self.dim = dim
        self.reachable = True  # did the last exchange with the registry succeed
        self.synced_at = time.time()  # when this replica last knew it was at the registry's latest version
        self._lock = asyncio.Lock()  # changes are applied one at a time, in version order

    # -- our own writes ----------------------------------------------------------------------------------------

    async def added(self, entry: Entry, ids: list[int], chunks: list[str], vectors: Vectors, version: int) -> None:
        await self._through(version, lambda: self.workers.read(self._add, entry, ids, chunks, vectors, version))

    async def removed(self, entry_id: str, version: int) -> None:
        await self._through(version, lambda: self.workers.read(self._remove, entry_id, version))

    async def mode_set(self, entry: Entry, version: int) -> None:
        await self._through(version, lambda: self.workers.read(self._mode, entry, version))

    async def coverage_set(self, rows: list[Coverage], version: int) -> None:
        await self._through(version, lambda: self.workers.read(self._coverage, rows, version))

    async def _through(self, version: int, local: Callable[[], Awaitable[None]]) -> None:
        """Apply every change up to our own write at `version` in order; ours from the data in hand."""
        async with self._lock:
            current = self.memory.version
            if current >= version:
                return
            if current < version - 1:  # another replica changed the registry first: replay that
                await self._replay([c for c in await self.registry.changes_since(current) if c.version < version])
            if self.memory.version == version - 1:
                await local()
            else:  # the change log has a gap (should not happen): compare entry by entry
                await self._reconcile()

    # -- other replicas' writes -------------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Apply the changes other processes made since our version; returns how many."""
        async with self._lock:
            changes = await self.registry.changes_since(self.memory.version)
            await self._replay(changes)
            if changes and self.memory.version != changes[-1].version:
                await self._reconcile()
            self.reachable, self.synced_at = True, time.time()
            return len(changes)

    async def follow(self, poll_s: float, compact_keep: int = 0, compact_every_s: float = 3600.0) -> None:
        """Keep up with other replicas until cancelled: on every registry notification and every `poll_s`.
        With `compact_keep`, prune the change log to that many versions every `compact_every_s` (every replica
        may; the same DELETE twice is harmless)."""

        async def listen() -> None:
            async for _ in self.registry.notifications():
                await self._catch_up_logged()

        async def poll() -> None:
            while True:
                await asyncio.sleep(poll_s)
                await self._catch_up_logged()

        async def compact() -> None:
            while compact_keep:
                await asyncio.sleep(compact_every_s)
                try:
                    pruned = await self.registry.compact(compact_keep)
                except Exception as exc:  # the registry is down: the next round prunes
                    log.info("change log not compacted", extra={"error": type(exc).__name__})
                    continue
                if pruned:
                    log.info("change log compacted", extra={"pruned": pruned, "kept": compact_keep})

        await asyncio.gather(listen(), poll(), compact())

    async def _catch_up_logged(self) -> None:
        try:
            applied = await self.catch_up()
        except Exception as exc:  # the registry is down: keep enforcing what we have, retry on the next tick
            if self.reachable:
                log.warning(
                    "registry unreachable; enforcing version %d until it is back",
                    self.memory.version,
                    extra={"error": type(exc).__name__},
                )
            self.reachable = False
            return
        if applied:
            log.info("caught up with the registry", extra={"changes": applied, "version": self.memory.version})

    async def _replay(self, changes: list[Change]) -> None:
        for change in changes:
            if change.version != self.memory.version + 1:
                return  # a gap: the caller reconciles
            if change.op == "add":
                await self._fetch_and_add(change.entry_id, change.version)
            elif change.op == "remove":
                await self.workers.read(self._remove, change.entry_id, change.version)
            elif change.op == "mode":
                found = await self.registry.entries(change.entry_id)
                if found:
                    await self.workers.read(self._mode, found[0], change.version)
                else:  # removed since; its removal comes later in the log
                    await self.workers.read(self._set_version, change.version)
            elif change.op == "coverage":  # the rows as they are now (a later change replays them again)
                await self.workers.read(self._coverage, await self.registry.coverage(), change.version)
            else:
                raise ValueError(f"unknown change {change.op!r} at version {change.version}")

    async def _fetch_and_add(self, entry_id: str, version: int) -> None:
        found = await self.registry.entry_chunks(entry_id)
        if found is None:  # removed since; its removal comes later in the log
            await self.workers.read(self._set_version, version)
            return
        entry, chunks = found
        vectors = np.stack([c.vector for c in chunks]) if chunks else np.zeros((0, self.dim), dtype=np.float32)
        ids = [c.id for c in chunks]
        texts = [c.text for c in chunks]
        if self.memory.meaning is not None:  # another replica's sentences: embedded here, off the reader thread
            await self.workers.write(self.memory.meaning.embed, texts)
        await self.workers.read(self._add, entry, ids, texts, vectors, version)

    async def _reconcile(self) -> None:
        """Fallback when the change log cannot be replayed: diff the entries, then take the registry's version."""
        version = await self.registry.version()
        remote = {e.id: e for e in await self.registry.entries()}
        local = {e.id: e for e in await self.workers.read(self.memory.entries)}
        log.warning("registry change log has a gap; reconciling entry by entry", extra={"version": version})
        current = self.memory.version
        for entry_id in local.keys() - remote.keys():
            await self.workers.read(self._remove, entry_id, current)
        for entry_id in remote.keys() - local.keys():
            await self._fetch_and_add(entry_id, current)
        for entry_id in remote.keys() & local.keys():
            if remote[entry_id].mode != local[entry_id].mode:
                await self.workers.read(self._mode, remote[entry_id], current)
        await self.workers.read(self._coverage, await self.registry.coverage(), current)
        await self.workers.read(self._set_version, version)

    # -- the changes themselves (reader thread) ---------------------------------------------------------------

    def _set_version(self, version: int) -> None:
        self.memory.version = version

    def _add(self, entry: Entry, ids: list[int], chunks: list[str], vectors: Vectors, version: int) -> None:
        self.memory.version = version
        added = self.memory.add(entry, ids, chunks, vectors)
        if added is not None:
            self.upkeep.changed("add", added, vectors)

    def _remove(self, entry_id: str, version: int) -> None:
        self.memory.version = version
        self.upkeep.changed("remove", self.memory.remove(entry_id), None)

    def _mode(self, entry: Entry, version: int) -> None:
        self.memory.version = version
        self.memory.set_mode(entry)

    def _coverage(self, rows: list[Coverage], version: int) -> None:
        self.memory.version = version
        self.memory.coverage.replace(rows)
