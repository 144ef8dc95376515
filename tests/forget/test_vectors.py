"""The IVF index and its exact index of recent additions: a chunk added after the IVF was built is found exactly."""

from __future__ import annotations

import numpy as np
import pytest

from guard.forget import vectors as vectors_module
from guard.forget.vectors import Plan, VectorIndex

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def built(n: int = 4000, nlist: int = 64, nprobe: int = 1) -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    data = unit(rng.standard_normal((n, DIM)))
    index = VectorIndex(DIM, Plan("ivf", nlist), nprobe=nprobe)
    index._index.train(data)
    index._add_built(np.arange(n, dtype=np.int64), data)
    return index, rng


def test_chunks_added_to_an_ivf_are_found_exactly_where_the_ivf_alone_misses_them() -> None:
    index, rng = built()
    new = unit(rng.standard_normal((100, DIM)))
    ids = np.arange(10_000, 10_100, dtype=np.int64)
    queries = unit(new + 0.6 * unit(rng.standard_normal((100, DIM))))  # near each new chunk, not on it
    exact = (queries * new).sum(axis=1)
    index.add(ids, new)
    assert index.recent == 100 and len(index) == 4100
    scores, found = index.search(queries, 8)
    assert all(ids[i] in found[i] for i in range(100))  # each query finds its own new chunk ...
    at = [float(scores[i][list(found[i]).index(ids[i])]) for i in range(100)]
    assert np.allclose(at, exact, atol=1e-5)  # ... at its exact score, ranked among the IVF's hits
    assert all((np.diff(row) <= 1e-6).all() for row in scores)

    ivf_only, _ = built()  # the same chunks put straight into the IVF: with nprobe 1 many are not seen
    ivf_only._add_built(ids, new)
    _, missed = ivf_only.search(queries, 8)
    assert sum(ids[i] not in missed[i] for i in range(100)) >= 10

    assert index.remove(ids[:50]) == 50 and index.recent == 50
    _, found = index.search(queries[:50], 8)
    assert not np.isin(found, ids[:50]).any()


def test_recent_additions_move_into_the_ivf_when_there_are_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "RECENT_MAX", 30)
    index, rng = built(nprobe=64)  # every list searched: the IVF finds what it holds
    new = unit(rng.standard_normal((40, DIM)))
    ids = np.arange(20_000, 20_040, dtype=np.int64)
    index.add(ids[:20], new[:20])
    assert index.recent == 20
    index.add(ids[20:], new[20:])  # past RECENT_MAX: all of them now in the IVF
    assert index.recent == 0 and len(index) == 4040
    scores, found = index.search(new, 1)
    assert (found[:, 0] == ids).all() and np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_a_flat_index_has_no_recent_part() -> None:
    index = VectorIndex(DIM)
    index.add(np.arange(3, dtype=np.int64), unit(np.eye(3, DIM)))
    assert index.recent == 0 and len(index) == 3


def test_an_ivf_searches_as_many_lists_as_it_is_told() -> None:
    index, rng = built(nprobe=1)
    queries = unit(rng.standard_normal((50, DIM)))
    _, narrow = index.search(queries, 8)
    index.set_nprobe(64)  # every list: exact up to the ranking
    scores, wide = index.search(queries, 8)
    exact = np.sort(queries @ unit(np.random.default_rng(0).standard_normal((4000, DIM))).T, axis=1)[:, ::-1][:, :8]
    assert np.allclose(scores, exact, atol=1e-5)
    assert (narrow != wide).any()
