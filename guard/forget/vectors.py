"""The faiss adapter: cosine search over unit vectors, with int64 ids so chunks can be removed.

The index kind follows the size (`choose`):
- up to FLAT_MAX chunks: exact search, `IndexIDMap2(IndexFlatIP)` (a scan of 20k vectors takes ~2 ms); where faiss
  cannot be imported, `guard.forget.exact.ExactIndex` in numpy at any size (no inverted file);
- beyond: an inverted file (IVF) with ~4·√n lists, trained on a sample, searched in `nprobe` lists; it stores
  full vectors up to PQ_FROM chunks. Beyond, it stores 4-bit product-quantised codes scanned with SIMD
  ("fast-scan", dim/8 bytes a chunk) in PQ_NPROBE lists, and re-ranks its top RERANK·k hits on 8-bit codes kept by
  chunk id (dim bytes a chunk, scores within ~1e-3 of exact). At a million chunks that is ~430 MB; a search takes
  ~0.6 ms and finds more entries than the 8-bit IVF it replaced did in 2.4 ms (bench/ivf_layouts.py).
  The 4-bit codes are trained on the sample the index was built from. Chunks far from it (say, a domain added
  later) are coded coarsely until the next rebuild, and the re-rank cannot recover one that the scan did not rank
  among its candidates. That is one more reason why additions stay in the exact index below, and why the index
  watches for drift: the training sample's 5th percentile of similarity to the nearest list centre is the floor;
  when more than DRIFT_SHARE of the chunks merged in since the build fall below it (4x the sample's own 5%),
  `drifted` is set and `ForgetIndex` rebuilds the index, trained on a sample that now holds them.
Removal is native in both (`remove_ids`); the IVF's lists are scanned for the ids, a few ms at a million chunks.
When the size moves past what the current index was made for, `ForgetIndex` rebuilds it in the background.

An IVF finds a vector only if it lies in one of the `nprobe` lists nearest the query: at a million chunks 15% of
forget10's questions that reach the input threshold missed their own, freshly added, entry (`bench/scale.py`).
So chunks added to an IVF after it was built go first to a small exact index of *recent* additions, searched
beside it, and move into the IVF only when that holds RECENT_MAX chunks (or at the next rebuild): a new forget
request is found by meaning alone, exactly, while it is new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from guard.forget.embedder import Vectors
from guard.forget.exact import ExactIndex

try:
    import faiss

    HAVE_FAISS = True
except ImportError:  # a slim install (bench/gpu carries no faiss): exact search in numpy, always flat
    HAVE_FAISS = False

Ids = npt.NDArray[np.int64]

FLAT_MAX = 20_000
PQ_FROM = 200_000
PQ_NPROBE = 64  # lists searched by the fast-scan IVF: its scan is cheap (bench/RESULTS.md, issue 15)
RERANK = 4  # the fast-scan IVF's top RERANK·k hits are re-ranked on 8-bit codes
TRAIN_PER_LIST = 40  # training vectors per inverted list
NPROBE = 32
MIN_NLIST = 256
RECENT_MAX = 20_000  # chunks in the exact index of recent additions (a scan of them takes ~2 ms)
DRIFT_SHARE = 0.2  # merged chunks below the training sample's 5th percentile that call for retraining
DRIFT_MIN = 1_000  # merged chunks before drift is judged


@dataclass(frozen=True)
class Plan:
    kind: str  # "flat" | "ivf" | "ivf-pq"
    nlist: int = 0

    def fits(self, n: int) -> bool:
        """Whether an index made by this plan is still right for n vectors (else rebuild)."""
        if self.kind == "flat":
            return n <= FLAT_MAX or not HAVE_FAISS
        if n < FLAT_MAX // 2:  # hysteresis: back to flat only well below the threshold
            return False
        wanted = choose(max(n, FLAT_MAX + 1))
        return wanted.kind == self.kind and 0.5 <= wanted.nlist / self.nlist <= 2


def pin_threads(threads: int = 1) -> None:
    """faiss's OpenMP threads for the calling thread (OpenMP's setting is per thread): one is fastest for the
    few queries of a request (no fork/join, no spinning threads competing with the embedder)."""
    if HAVE_FAISS:
        faiss.omp_set_num_threads(threads)


def choose(n: int) -> Plan:
    """~4·√n lists, rounded down to a power of two (2,048 at a million chunks). 4,096 lists with an HNSW coarse
    quantizer were measured against it at 1e6 (bench/RESULTS.md, issue 15): at equal recall they were slower.
    Without faiss, flat (exact) at any size."""
    if n <= FLAT_MAX or not HAVE_FAISS:
        return Plan("flat")
    nlist = max(MIN_NLIST, 1 << int(np.log2(4 * np.sqrt(n))))
    return Plan("ivf-pq" if n >= PQ_FROM else "ivf", nlist)


class VectorIndex:
    def __init__(self, dim: int, plan: Plan | None = None, nprobe: int | None = None) -> None:
        self.dim = dim
        self.plan = plan or Plan("flat")
        nprobe = nprobe or (PQ_NPROBE if self.plan.kind == "ivf-pq" else NPROBE)
        self.nprobe = nprobe
        self._codes: Codes | None = None
        if self.plan.kind == "flat":
            self._index: faiss.Index = self._flat(dim)
        else:
            quantizer = faiss.IndexFlatIP(dim)
            ivf: faiss.IndexIVF
            if self.plan.kind == "ivf":
                ivf = faiss.IndexIVFFlat(quantizer, dim, self.plan.nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                m = next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)  # 4 dimensions a code
                ivf = faiss.IndexIVFPQFastScan(quantizer, dim, self.plan.nlist, m, 4, faiss.METRIC_INNER_PRODUCT)
                self._codes = Codes(dim)
            self._quantizer = quantizer  # the IVF does not own it: keep it alive
            ivf.nprobe = min(nprobe, self.plan.nlist)
            self._index = ivf
        self._recent: faiss.Index | None = None if self.plan.kind == "flat" else self._flat(dim)
        self._floor: float | None = None  # the 4-bit codes' training sample: 5th percentile of centre similarity
        self.merged = 0  # chunks merged into the IVF since it was built
        self.outliers = 0  # of them, below the floor

    @staticmethod
    def _flat(dim: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim)) if HAVE_FAISS else cast("faiss.Index", ExactIndex(dim))

    @classmethod
    def build(cls, dim: int, n: int, sample: Vectors | None, batches: Iterable[tuple[Ids, Vectors]]) -> VectorIndex:
        """An index of the kind right for n vectors: trained on `sample` if it needs training, then filled."""
        index = cls(dim, choose(n))
        if not index._index.is_trained:
            assert sample is not None and len(sample), "an IVF index needs training vectors"
            index._train(np.ascontiguousarray(sample, dtype=np.float32))
        for ids, vectors in batches:
            index._add_built(ids, vectors)
        return index

    def _train(self, sample: Vectors) -> None:
        self._index.train(sample)
        if self._codes is not None:
            self._codes.train(sample)
            self._floor = float(np.quantile(self._centre_similarity(sample), 0.05))

    def _centre_similarity(self, vectors: Vectors) -> npt.NDArray[np.float32]:
        similarity: npt.NDArray[np.float32] = self._quantizer.search(vectors, 1)[0][:, 0]
        return similarity

    @property
    def drifted(self) -> bool:
        """Have the chunks merged in since the build moved away from what the 4-bit codes were trained on?"""
        return self.merged >= DRIFT_MIN and self.outliers > DRIFT_SHARE * self.merged

    def set_nprobe(self, nprobe: int) -> None:
        """Lists searched per query (an IVF's recall against its speed; bench/scale.py --nprobe)."""
        self.nprobe = nprobe
        if HAVE_FAISS and isinstance(self._index, faiss.IndexIVF):
            self._index.nprobe = min(nprobe, self.plan.nlist)

    def __len__(self) -> int:
        return int(self._index.ntotal) + (int(self._recent.ntotal) if self._recent is not None else 0)

    @property
    def recent(self) -> int:
        """Chunks in the exact index of recent additions (0 for a flat index: it is exact throughout)."""
        return int(self._recent.ntotal) if self._recent is not None else 0

    @property
    def kind(self) -> str:
        return self.plan.kind

    def add(self, ids: Ids, vectors: Vectors) -> None:
        """A change: into the recent additions of an IVF (moved into the IVF when they are RECENT_MAX)."""
        if self._recent is None:
            self._add_built(ids, vectors)
            return
        if len(ids):
            self._recent.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
        if self._recent.ntotal > RECENT_MAX:
            self.merge_recent()

    def _add_built(self, ids: Ids, vectors: Vectors) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._index.add_with_ids(vectors, ids.astype(np.int64))
            if self._codes is not None:
                self._codes.put(ids, vectors)

    def merge_recent(self) -> None:
        """Move the recent additions into the IVF (when they are RECENT_MAX; benchmarks)."""
        recent = self._recent
        assert recent is not None
        n = int(recent.ntotal)
        mapped = cast(faiss.IndexIDMap2, faiss.downcast_index(recent))
        ids = faiss.vector_to_array(mapped.id_map).astype(np.int64)
        vectors = mapped.index.reconstruct_n(0, n)
        if self._floor is not None and n:
            self.merged += n
            self.outliers += int((self._centre_similarity(vectors) < self._floor).sum())
        self._add_built(ids, vectors)
        self._recent = self._flat(self.dim)

    def remove(self, ids: Ids) -> int:
        if not len(ids):
            return 0
        selector = ids.astype(np.int64)
        removed = int(self._index.remove_ids(selector))  # type: ignore[arg-type]  # faiss wraps arrays
        if self._recent is not None and self._recent.ntotal:
            removed += int(self._recent.remove_ids(selector))  # type: ignore[arg-type]
        return removed

    def search(self, queries: Vectors, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top-k (scores, ids) per query; missing neighbours have id -1."""
        if len(self) == 0 or len(queries) == 0:
            return (
                np.zeros((len(queries), 0), dtype=np.float32),
                np.zeros((len(queries), 0), dtype=np.int64),
            )
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._codes is not None and self._index.ntotal:
            found = self._index.search(queries, min(RERANK * k, int(self._index.ntotal)))[1]
            scores, ids = self._codes.rerank(queries, found, k)
        else:
            scores, ids = self._index.search(queries, min(k, max(1, int(self._index.ntotal))))
        if self._recent is None or not self._recent.ntotal:
            return scores, ids
        more, more_ids = self._recent.search(queries, min(k, int(self._recent.ntotal)))
        scores, ids = np.concatenate([scores, more], axis=1), np.concatenate([ids, more_ids], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # missing neighbours (id -1) score -FLT_MAX: last
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


class Codes:
    """8-bit codes of the fast-scan IVF's chunks, by chunk id, to re-rank its hits: its 4-bit scores are coarse
    (~0.02), these are within ~1e-3 of exact. The codes are stored densely, one row per chunk put, found through
    an id -> row array (4 bytes per id, not `dim`): registry ids are never reused, so after much churn the ids
    span far more than the chunks held, and rows by id would cost `dim` bytes for every id ever given out. Rows of
    removed chunks stay until the next rebuild (which puts only the chunks held)."""

    def __init__(self, dim: int) -> None:
        self.sq = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
        self.rows = np.zeros((0, dim), dtype=np.uint8)
        self.used = 0  # rows in use
        self.row_of = np.full(0, -1, dtype=np.int32)  # chunk id -> row (-1: none)

    def train(self, sample: Vectors) -> None:
        self.sq.train(np.ascontiguousarray(sample, dtype=np.float32))

    def put(self, ids: Ids, vectors: Vectors) -> None:
        if not len(ids):
            return
        top = int(ids.max()) + 1
        if top > len(self.row_of):
            grown = np.full(max(top, 2 * len(self.row_of)), -1, dtype=np.int32)
            grown[: len(self.row_of)] = self.row_of
            self.row_of = grown
        rows = self.row_of[ids]
        fresh = rows < 0  # an id put again (a rebuild's replay) keeps its row
        need = self.used + int(fresh.sum())
        if need > len(self.rows):
            grown_rows = np.zeros((max(need, 2 * len(self.rows)), self.rows.shape[1]), dtype=np.uint8)
            grown_rows[: self.used] = self.rows[: self.used]
            self.rows = grown_rows
        rows[fresh] = np.arange(self.used, need, dtype=np.int32)
        self.row_of[ids] = rows
        self.used = need
        self.rows[rows] = self.sq.compute_codes(np.ascontiguousarray(vectors, dtype=np.float32))

    def rerank(self, queries: Vectors, found: Ids, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        """Each query's hits (id -1: none) scored on their 8-bit codes: the best k, best first."""
        scores = np.full(found.shape, -np.finfo(np.float32).max, dtype=np.float32)
        for row, (query, ids) in enumerate(zip(queries, found, strict=True)):
            held = ids >= 0
            if held.any():
                scores[row, held] = self.sq.decode(self.rows[self.row_of[ids[held]]]) @ query
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(found, order, axis=1)
