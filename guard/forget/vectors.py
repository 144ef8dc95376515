"""The faiss adapter: cosine search over unit vectors, with int64 ids so chunks can be removed."""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

from guard.forget.embedder import Vectors

Ids = npt.NDArray[np.int64]


class VectorIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: Ids) -> int:
        if not len(ids):
            return 0
        return int(self._index.remove_ids(ids.astype(np.int64)))  # type: ignore[arg-type]  # faiss wraps arrays

    def search(self, queries: Vectors, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top-k (scores, ids) per query; missing neighbours have id -1."""
        if len(self) == 0 or len(queries) == 0:
            return (
                np.zeros((len(queries), 0), dtype=np.float32),
                np.zeros((len(queries), 0), dtype=np.int64),
            )
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))
        return scores, ids
