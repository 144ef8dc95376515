"""The IVF index and its exact index of recent additions: a chunk added after the IVF was built is found exactly."""

from __future__ import annotations

import inspect
import json.decoder
import random
from pathlib import Path

import numpy as np
import pytest

from guard.eval.data import Tofu
from guard.forget import vectors as vectors_module
from guard.forget.embedder import Embedder
from guard.forget.vectors import Plan, VectorIndex
from guard.text import sentences

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


def test_a_fast_scan_ivf_reranks_its_hits_to_near_exact_scores_and_removes_by_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past PQ_FROM chunks: 4-bit fast-scan codes find the candidates, 8-bit codes kept by id give their scores.
    (32 dimensions in 8 codes of 4 bits are coarser than MiniLM's 384 in 96: more candidates are re-ranked here.)"""
    monkeypatch.setattr(vectors_module, "RERANK", 16)
    assert vectors_module.choose(vectors_module.PQ_FROM).kind == "ivf-pq"
    rng = np.random.default_rng(2)
    centres = unit(rng.standard_normal((64, DIM)))
    data = unit(centres[rng.integers(0, 64, 6000)] + 0.4 * rng.standard_normal((6000, DIM)))
    ids = np.arange(6000, dtype=np.int64) * 3  # ids need not be contiguous
    index = VectorIndex(DIM, Plan("ivf-pq", 64))
    assert index.nprobe == 64  # PQ_NPROBE: every list here
    index._train(data)
    index._add_built(ids, data)
    queries = unit(data[:100] + 0.3 * rng.standard_normal((100, DIM)))
    scores, found = index.search(queries, 8)
    exact = queries @ data.T
    recall = np.mean(
        [len(set(f.tolist()) & set(ids[np.argsort(-e)[:8]].tolist())) / 8 for f, e in zip(found, exact, strict=True)]
    )
    assert recall >= 0.8, recall
    for row, (s, f) in enumerate(zip(scores, found, strict=True)):  # each score is that chunk's, not another's
        assert np.allclose(s, exact[row, f // 3], atol=0.01)
    assert index.remove(ids[:100]) == 100
    _, after = index.search(queries, 8)
    assert not np.isin(after, ids[:100]).any()
    new = unit(centres[:5] + 0.4 * rng.standard_normal((5, DIM)))  # like the data the codes were trained on
    index.add(np.array([90_001, 90_002, 90_003, 90_004, 90_005]), new)  # recent additions, then merged in
    index.merge_recent()
    assert index.recent == 0 and len(index) == 5905
    scores, found = index.search(new, 8)
    assert (found[:, 0] == np.arange(90_001, 90_006)).all() and np.allclose(scores[:, 0], 1.0, atol=0.01)


def test_a_domain_merged_in_after_training_sets_drifted_and_what_it_was_trained_on_does_not() -> None:
    """The 4-bit codes are trained on the build's sample: chunks far from it are coded coarsely, so the index
    says when more than DRIFT_SHARE of the chunks merged in since the build lie below the sample's floor."""
    rng = np.random.default_rng(3)
    half = DIM // 2
    known = np.zeros((4000, DIM), dtype=np.float32)
    known[:, :half] = rng.standard_normal((4000, half))  # the first half of the dimensions only
    known = unit(known)
    index = VectorIndex(DIM, Plan("ivf-pq", 32))
    index._train(known)
    index._add_built(np.arange(4000, dtype=np.int64), known)

    same = unit(np.hstack([rng.standard_normal((1500, half)), np.zeros((1500, half))]).astype(np.float32))
    index.add(np.arange(10_000, 11_500, dtype=np.int64), same)
    index.merge_recent()
    assert index.merged == 1500 and not index.drifted  # ~5% below the floor, as in the sample

    other = np.zeros((1500, DIM), dtype=np.float32)
    other[:, half:] = rng.standard_normal((1500, half))  # a domain the codes never saw
    index.add(np.arange(20_000, 21_500, dtype=np.int64), unit(other))
    assert not index.drifted  # still in the exact recent additions: nothing coded coarsely yet
    index.merge_recent()
    assert index.drifted and index.outliers > 1500


def test_re_rank_codes_take_a_row_per_chunk_however_sparse_the_ids() -> None:
    """Registry ids are never reused: after churn a few chunks can carry ids in the millions. The 8-bit codes
    cost a row per chunk held (and 4 bytes per id), not a row per id ever given out."""
    rng = np.random.default_rng(5)
    data = unit(rng.standard_normal((3000, DIM)))
    index = VectorIndex(DIM, Plan("ivf-pq", 16))
    index._train(data)
    ids = np.arange(3000, dtype=np.int64) + 5_000_000
    index._add_built(ids, data)
    codes = index._codes
    assert codes is not None and codes.used == 3000 and codes.rows.nbytes <= 2 * 3000 * DIM
    index._add_built(ids[:10], data[:10])  # the same ids again (a rebuild's replay): no new rows
    assert codes.used == 3000
    scores, found = index.search(data[:20], 4)
    assert (found[:, 0] == ids[:20]).all() and np.allclose(scores[:, 0], 1.0, atol=0.01)


def test_source_code_merged_into_an_index_trained_on_biographies_is_drift_and_more_biographies_are_not(
    minilm: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real MiniLM vectors, on a case the trigger was not tuned on: 4-bit codes trained on TOFU's sentences
    (biographies, world facts); held-out ones merged in stay under the trigger, lines of Python source code (a
    takedown of another kind) set it."""
    monkeypatch.setattr(vectors_module, "DRIFT_MIN", 50)
    tofu = Tofu(Path(__file__).parents[1] / "data" / "tofu-sample")
    rows = [row for split in ("retain90", "forget10", "real_authors", "world_facts") for row in tofu.rows(split)]
    english = list(dict.fromkeys([s for row in rows for s in sentences(row["answer"])] + [r["question"] for r in rows]))
    random.Random(0).shuffle(english)  # the held-out sentences from the same mix as the trained ones
    assert len(english) >= 300
    code = [line.strip() for line in inspect.getsource(json.decoder).splitlines() if len(line.strip()) > 30][:80]
    assert len(code) == 80
    trained, held_out = minilm.embed(english[:220]), minilm.embed(english[220:300])
    index = VectorIndex(minilm.dim, Plan("ivf-pq", 8))
    index._train(trained)
    index._add_built(np.arange(220, dtype=np.int64), trained)

    index.add(np.arange(1000, 1080, dtype=np.int64), held_out)
    index.merge_recent()
    assert index.merged == 80 and not index.drifted, index.outliers
    index.add(np.arange(2000, 2080, dtype=np.int64), minilm.embed(code))
    index.merge_recent()
    assert index.drifted, index.outliers
