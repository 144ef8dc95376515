"""The request path's embeddings in two stages: int8 MiniLM for every new text, the float model only near a line.

A text's MiniLM vector matters to a verdict only through its best scores against the forget index, and a score
below the lowest threshold any policy counts or watches from (`guard.checks.decide.floors`) changes nothing. So
each new text is first embedded by `minilm-fast` (int8 matrix products, ~2x faster on a CPU) and the index is
searched with that vector. A text whose best score comes within `MARGIN` of its floor, or above it, is embedded
again by the float model, whose vector the checks then read, so every score that can count is the float model's.
The others keep the int8 vector: below every threshold either way. A text the float model embedded before (an
earlier turn, the LRU) is taken from its cache without the first stage.

`MARGIN` is measured, not assumed, offline and live. `bench/cascade.py` reports, over TOFU's questions,
answers, paraphrases and perturbations, the other languages' Latin-script questions and every piece the attack
suite's requests are cut into, by how much an int8 best score fell short of the float one, and the share of texts
each stage embedded (`bench/RESULTS.md`). Live, one text in `audit_every` that the first stage settled is
embedded again by the float model in the background, off the request's path: how far its int8 score fell short,
and whether the float score would have reached the floor (a miss: the margin is too small for this traffic), go
to the metrics (`guard_first_stage_shortfall`, `guard_first_stage_misses`). The index's own vectors are always the
float model's: the first stage writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import numpy as np
import numpy.typing as npt

from guard.forget.batcher import EmbedBatcher
from guard.forget.embedder import CachedEmbedder, Embedder, Vectors
from guard.forget.view import IndexView

MARGIN = 0.08  # about twice the largest shortfall measured (bench/cascade.py)
AUDIT_EVERY = 64  # settled texts per live audit (one float embedding in the background)
SPACE = "all-MiniLM-L6-v2"  # the first stage approximates this model only

log = logging.getLogger("guard.pipeline")

Best = Callable[[Vectors], Awaitable[npt.NDArray[np.float32]]]
Audited = Callable[[float, bool], None]  # (shortfall, missed)


def best_scores(view: IndexView, vectors: Vectors) -> npt.NDArray[np.float32]:
    """Each vector's best score against the index (-1 where nothing is near): on the index's reader thread."""
    if not view.chunk_count or not len(vectors):
        return np.full(len(vectors), -1.0, dtype=np.float32)
    return np.array([max(found.values(), default=-1.0) for found in view.search(vectors)], dtype=np.float32)


class Cascade:
    """The two stages over the float model's batcher (`exact`); without a `fast` model, the float model alone. A
    text is *settled* when the first stage's score keeps it out of the float model."""

    def __init__(
        self,
        exact: EmbedBatcher,
        fast: Embedder | None,
        margin: float = MARGIN,
        audit_every: int = AUDIT_EVERY,
        audited: Audited | None = None,
    ) -> None:
        self.exact = exact
        self.fast = EmbedBatcher(fast) if fast is not None else None
        inner = exact.embedder
        self._cache = inner if isinstance(inner, CachedEmbedder) else None
        self.margin = margin
        self.texts = {"fast": 0, "exact": 0, "cached": 0}  # texts each stage embedded (bench, tests)
        self.audit_every = audit_every  # 0: no live audit
        self.audited = audited
        self._settled = 0  # settled texts since the last audit
        self._audits: set[asyncio.Task[None]] = set()

    async def audited_all(self) -> None:
        """Wait for the audits under way (tests, benchmarks)."""
        await asyncio.gather(*self._audits, return_exceptions=True)

    def close(self) -> None:
        for task in self._audits:
            task.cancel()
        if self.fast is not None:
            self.fast.close()

    async def embed(self, texts: Sequence[str], passages: set[str], floors: tuple[float, float], best: Best) -> Vectors:
        """The vectors the checks read: the float model's wherever a score could count. `floors` are
        (question or sentence, passage statement); `passages` the texts read only as a passage's statements;
        `best` searches the index with vectors (`best_scores` on the reader thread)."""
        if self.fast is None or not texts:
            return await self.exact.embed(list(texts))
        out = np.empty((len(texts), self.exact.embedder.dim), dtype=np.float32)
        known = self._cache.known(texts) if self._cache is not None else [None] * len(texts)
        new = [i for i, v in enumerate(known) if v is None]
        for i, v in enumerate(known):
            if v is not None:
                out[i] = v
        self.texts["cached"] += len(texts) - len(new)
        if not new:
            return out
        first = await self.fast.embed([texts[i] for i in new])
        self.texts["fast"] += len(new)
        scores = await best(first)
        near = []
        for row, (i, score) in enumerate(zip(new, scores, strict=True)):
            floor = floors[1] if texts[i] in passages else floors[0]
            if score >= floor - self.margin:
                near.append(i)
            else:
                out[i] = first[row]
                self._audit(texts[i], float(score), floor, best)
        if near:
            out[near] = await self.exact.embed([texts[i] for i in near])
            self.texts["exact"] += len(near)
        return out

    def _audit(self, text: str, score: float, floor: float, best: Best) -> None:
        """Every `audit_every`-th settled text: its float score, in the background."""
        self._settled += 1
        if not self.audit_every or self._settled < self.audit_every:
            return
        self._settled = 0
        task = asyncio.get_running_loop().create_task(self._check(text, score, floor, best))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    async def _check(self, text: str, score: float, floor: float, best: Best) -> None:
        try:
            exact = float((await best(await self.exact.embed([text])))[0])
        except Exception as exc:  # an audit never fails a request; the check's own errors are counted there
            log.warning("first-stage audit failed", extra={"error": type(exc).__name__})
            return
        missed = exact >= floor
        if missed:  # no text: the scores say enough
            log.warning(
                "first stage settled a text the float model puts at its floor: widen the margin",
                extra={"int8": round(score, 3), "float": round(exact, 3), "floor": floor},
            )
        if self.audited is not None:
            self.audited(exact - score, missed)
