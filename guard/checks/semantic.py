"""Semantic matching shared by the input and output checks: embed texts, search, keep entries over threshold."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from guard.checks.verdict import Match
from guard.forget.embedder import Vectors
from guard.forget.index import ForgetIndex


def semantic_matches(
    index: ForgetIndex,
    texts: Sequence[str],
    threshold_of: Callable[[str], float | None],
    vectors: Vectors | None = None,
) -> list[Match]:
    """The best-scoring match per entry whose score reaches `threshold_of(entry_id)` (None: check off).

    `vectors`: the texts' embeddings when the caller has them already (the guard embeds in micro-batches).
    """
    if not texts or not index.chunk_count:
        return []
    best: dict[str, float] = {}
    for scores in index.search(index.embedder.embed(texts) if vectors is None else vectors):
        for entry_id, score in scores.items():
            threshold = threshold_of(entry_id)
            if threshold is not None and score >= threshold and score > best.get(entry_id, -2.0):
                best[entry_id] = score
    return [Match(entry_id, "semantic", score) for entry_id, score in best.items()]
