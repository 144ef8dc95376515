"""Micro-batching: the texts of concurrent requests are embedded together, on one thread, in one model call.

A request's texts wait only while the model is busy with earlier ones; whatever arrived meanwhile goes into the
next call. One short text costs ~2 ms on 2 cores and eight cost ~5, so under concurrency the batch is what
keeps the embedding work from growing with the number of requests. The event loop never runs the model.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from guard.forget.embedder import Embedder, Vectors

MAX_BATCH = 64  # texts per model call


@dataclass
class _Waiting:
    texts: list[str]
    future: asyncio.Future[Vectors] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class EmbedBatcher:
    def __init__(self, embedder: Embedder, max_batch: int = MAX_BATCH) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._pending: list[_Waiting] = []
        self._running = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="guard-embed")
        self.calls = 0  # model calls made (tests, metrics)

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    async def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        waiting = _Waiting(list(texts))
        self._pending.append(waiting)
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await waiting.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch: list[_Waiting] = []
                size = 0
                while self._pending and (not batch or size + len(self._pending[0].texts) <= self.max_batch):
                    batch.append(self._pending.pop(0))
                    size += len(batch[-1].texts)
                texts = [t for w in batch for t in w.texts]
                try:
                    vectors = await loop.run_in_executor(self._thread, self.embedder.embed, texts)
                except Exception as exc:  # every waiter gets the failure (their on_error policy applies)
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                self.calls += 1
                start = 0
                for w in batch:
                    if not w.future.done():  # a cancelled request no longer waits
                        w.future.set_result(vectors[start : start + len(w.texts)])
                    start += len(w.texts)
        finally:
            self._running = False
