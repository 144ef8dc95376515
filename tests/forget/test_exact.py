"""The numpy fallback for a guard without faiss (`guard.forget.exact`): the same answers as faiss's flat index, and
the normal install still searches with faiss."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from guard.forget import vectors as vectors_module
from guard.forget.exact import MISSING, ExactIndex
from guard.forget.vectors import FLAT_MAX, Plan, VectorIndex, choose

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def both(n: int = 500) -> tuple[ExactIndex, faiss.Index, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(1)
    data = unit(rng.standard_normal((n, DIM)))
    ids = rng.permutation(10 * n)[:n].astype(np.int64)  # sparse, unordered ids, as a registry's after churn
    ours, theirs = ExactIndex(DIM), faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    for part in np.array_split(np.arange(n), 7):  # added a few at a time, as entries are
        ours.add_with_ids(data[part], ids[part])
        theirs.add_with_ids(data[part], ids[part])
    return ours, theirs, ids, rng


def test_it_finds_what_faiss_finds_before_and_after_removals() -> None:
    ours, theirs, ids, rng = both()
    queries = unit(rng.standard_normal((20, DIM)))
    for _ in range(2):
        assert ours.ntotal == theirs.ntotal
        s1, i1 = ours.search(queries, 10)
        s2, i2 = theirs.search(queries, 10)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, atol=1e-5)
        gone = ids[rng.choice(len(ids), 100, replace=False)]
        assert ours.remove_ids(gone) == theirs.remove_ids(gone) == 100
        ids = np.setdiff1d(ids, gone)


def test_past_the_vectors_held_it_answers_as_faiss_does() -> None:
    index = ExactIndex(DIM)
    query = unit(np.ones((1, DIM)))
    scores, found = index.search(query, 3)
    assert found.tolist() == [[-1, -1, -1]] and np.all(scores == MISSING)
    index.add_with_ids(query, np.array([7], dtype=np.int64))
    scores, found = index.search(query, 3)
    assert found.tolist() == [[7, -1, -1]] and scores[0, 0] == pytest.approx(1.0)
    assert index.remove_ids(np.array([8], dtype=np.int64)) == 0 and index.ntotal == 1


def test_the_normal_install_searches_with_faiss() -> None:
    assert vectors_module.HAVE_FAISS
    assert isinstance(VectorIndex(DIM)._index, faiss.IndexIDMap2)
    assert choose(FLAT_MAX + 1).kind == "ivf"


def test_without_faiss_the_index_is_exact_and_flat_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "HAVE_FAISS", False)
    index = VectorIndex.build(DIM, 10 * FLAT_MAX, None, [])  # no training sample: none is needed
    assert isinstance(index._index, ExactIndex) and index.kind == "flat"
    assert choose(10 * FLAT_MAX).kind == "flat" and Plan("flat").fits(10 * FLAT_MAX)  # never rebuilt into an IVF
    vectors_module.pin_threads()  # no faiss threads to pin: nothing happens
    data = unit(np.random.default_rng(2).standard_normal((50, DIM)))
    index.add(np.arange(50, dtype=np.int64), data)
    scores, found = index.search(data[:3], 2)
    assert found[:, 0].tolist() == [0, 1, 2] and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert index.remove(np.array([0, 1], dtype=np.int64)) == 2 and len(index) == 48
    assert 0 not in index.search(data[:1], 5)[1]
