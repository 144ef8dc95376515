"""Texts embedded in this process as `guard serve` embeds them (the int8 first stage, the index searched, the float
model near a floor), timed step by step: what bench.cascade, bench.context and bench.chat_replay measure with."""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import Embedder, Vectors
from guard.forget.view import IndexView
from guard.pipeline.cascade import Cascade, best_scores


def staged(
    view: IndexView, exact: Embedder, fast: Embedder, texts: list[str], passages: set[str], lines: tuple[float, float]
) -> tuple[Vectors, dict[str, int], str]:
    """Embed `texts` in this process as `guard serve` does (`Cascade`: int8, the index searched, the float model
    near a floor): the vectors, how many texts each model embedded, and the time of each step."""
    marks: list[float] = [time.perf_counter()]
    counts: dict[str, int] = {}

    async def best(vectors: Vectors) -> Any:
        marks.append(time.perf_counter())
        found = best_scores(view, vectors)
        marks.append(time.perf_counter())
        return found

    async def run() -> Vectors:
        cascade = Cascade(EmbedBatcher(exact), fast)
        try:
            found = await cascade.embed(texts, passages, lines, best)
            marks.append(time.perf_counter())
            return found
        finally:
            cascade.close()
            cascade.exact.close()
            counts.update(cascade.texts)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        vectors = asyncio.run(run())
    else:  # called from a coroutine: its own loop on a thread
        with ThreadPoolExecutor(1) as pool:
            vectors = pool.submit(asyncio.run, run()).result()
    if len(marks) < 4:
        return vectors, counts, "all cached"
    ms = [1000 * (b - a) for a, b in itertools.pairwise(marks)]
    return (
        vectors,
        counts,
        f"int8 {ms[0]:.0f} ms ({counts['fast']}), search {ms[1]:.0f} ms, float {ms[2]:.0f} ms ({counts['exact']})",
    )
