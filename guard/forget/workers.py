"""The forget index's three threads and the bridge from them back to the event loop.

- reader: every check and every change to the in-memory index (one thread: consistent reads, no locks);
- writer: embedding the documents of a new entry (slow; checks never wait for it);
- upkeep: loading, rebuilding the faiss index for a new size, compacting postings (seconds at 1e6 chunks).

The registry's API is async; upkeep code running on a thread reaches it through `call`, `snapshot` and
`iterate`, which run the coroutine on the event loop and wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeVar

from guard.forget.registry import Chunk, Registry, Snapshot
from guard.forget.vectors import pin_threads

P = ParamSpec("P")
T = TypeVar("T")


class Workers:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="guard-check", initializer=pin_threads)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="guard-write")
        self.upkeep = ThreadPoolExecutor(1, thread_name_prefix="guard-upkeep")

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self.reader, lambda: fn(*args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self.writer, lambda: fn(*args, **kwargs))

    async def background(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the upkeep thread and wait for it."""
        return await asyncio.get_running_loop().run_in_executor(self.upkeep, fn)

    def shutdown(self) -> None:
        self.upkeep.shutdown(wait=True, cancel_futures=True)
        self.reader.shutdown(wait=True)
        self.writer.shutdown(wait=True)

    # -- the registry from worker threads -------------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the event loop from a worker thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    @contextlib.contextmanager
    def snapshot(self, registry: Registry) -> Iterator[Snapshot]:
        manager: AbstractAsyncContextManager[Snapshot] = registry.snapshot()
        snap = self.call(_enter(manager))
        try:
            yield snap
        finally:
            self.call(manager.__aexit__(None, None, None))

    def iterate(self, batches: AsyncIterator[list[Chunk]]) -> Iterator[list[Chunk]]:
        try:
            while True:
                try:
                    yield self.call(_next(batches))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(batches, "aclose", None)
            if close is not None:
                self.call(close())


async def _enter(manager: AbstractAsyncContextManager[T]) -> T:
    return await manager.__aenter__()


async def _next(batches: AsyncIterator[T]) -> T:
    return await batches.__anext__()
