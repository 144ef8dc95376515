"""Exact inner-product search in numpy: the flat index `guard.forget.vectors` uses when faiss cannot be imported
(a slim install: the GPU bench carries no faiss, `bench/gpu`). With faiss installed it is never used.

It answers the calls `VectorIndex` makes of faiss's `IndexIDMap2(IndexFlatIP)`, with the same results: `ntotal`,
`is_trained`, `add_with_ids`, `remove_ids`, `search` (best first; id -1 and score -FLT_MAX past the vectors held).
A search is one matrix product over every vector held: at forget10's ~1,500 chunks a few microseconds, at 20k
about faiss's speed, beyond that slower, since without faiss there is no inverted file (`vectors.choose`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MISSING = -np.finfo(np.float32).max  # faiss's score for a neighbour that is not there


class ExactIndex:
    def __init__(self, dim: int) -> None:
        self.d = dim
        self.is_trained = True
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self.ntotal = 0

    def add_with_ids(self, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> None:
        n = len(ids)
        if not n:
            return
        need = self.ntotal + n
        if need > len(self._ids):  # grown by doubling: adding one entry at a time stays linear
            size = max(need, 2 * len(self._ids), 64)
            vectors_grown = np.zeros((size, self.d), dtype=np.float32)
            vectors_grown[: self.ntotal] = self._vectors[: self.ntotal]
            ids_grown = np.zeros(size, dtype=np.int64)
            ids_grown[: self.ntotal] = self._ids[: self.ntotal]
            self._vectors, self._ids = vectors_grown, ids_grown
        self._vectors[self.ntotal : need] = vectors
        self._ids[self.ntotal : need] = ids
        self.ntotal = need

    def remove_ids(self, ids: npt.NDArray[np.int64]) -> int:
        """Remove every vector with one of these ids; how many were removed."""
        held = self._ids[: self.ntotal]
        keep = ~np.isin(held, ids)
        kept = int(keep.sum())
        removed = self.ntotal - kept
        if removed:
            self._vectors[:kept] = self._vectors[: self.ntotal][keep]
            self._ids[:kept] = held[keep]
            self.ntotal = kept
        return removed

    def search(self, queries: npt.NDArray[np.float32], k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k best (scores, ids) per query, best first."""
        scores = np.full((len(queries), k), MISSING, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        n = min(k, self.ntotal)
        if not n or not len(queries):
            return scores, found
        products = queries @ self._vectors[: self.ntotal].T
        if n < self.ntotal:
            top = np.argpartition(-products, n - 1, axis=1)[:, :n]
        else:
            top = np.broadcast_to(np.arange(self.ntotal), (len(queries), self.ntotal))
        best = np.take_along_axis(products, top, axis=1)
        order = np.argsort(-best, axis=1, kind="stable")
        scores[:, :n] = np.take_along_axis(best, order, axis=1)
        found[:, :n] = self._ids[np.take_along_axis(top, order, axis=1)]
        return scores, found
