"""Micro-batching: concurrent requests share model calls, each gets its own rows, failures reach every waiter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import Embedder, HashEmbedder, Vectors


class Slow(Embedder):
    """The hash fake, but each call blocks until released, so requests pile up behind it."""

    def __init__(self) -> None:
        self.inner = HashEmbedder()
        self.dim = self.inner.dim
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.entered.set()
        self.gate.wait(5)
        self.calls.append(len(texts))
        if self.fail:
            raise RuntimeError("model down")
        return self.inner.embed(texts)


async def test_concurrent_requests_are_embedded_together_and_get_their_own_rows() -> None:
    slow = Slow()
    batcher = EmbedBatcher(slow, max_batch=64)
    requests = [[f"text {i} a", f"text {i} b"] for i in range(8)]
    first = asyncio.create_task(batcher.embed(requests[0]))
    while not slow.entered.is_set():  # the first call is in the model; the others queue behind it
        await asyncio.sleep(0.01)
    rest = [asyncio.create_task(batcher.embed(r)) for r in requests[1:]]
    await asyncio.sleep(0.05)
    slow.gate.set()
    results = await asyncio.gather(first, *rest)
    assert slow.calls == [2, 14]  # two model calls for eight requests
    for texts, vectors in zip(requests, results, strict=True):
        np.testing.assert_array_equal(vectors, slow.inner.embed(texts))
    batcher.close()


async def test_a_failed_call_fails_every_request_in_it_and_the_batcher_recovers() -> None:
    slow = Slow()
    slow.fail = True
    slow.gate.set()
    batcher = EmbedBatcher(slow)
    results = await asyncio.gather(batcher.embed(["a"]), batcher.embed(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    slow.fail = False
    assert (await batcher.embed(["c"])).shape == (1, slow.dim)
    with pytest.raises(RuntimeError):
        slow.fail = True
        await batcher.embed(["d"])
    batcher.close()
