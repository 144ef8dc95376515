"""Where an IVF search's time goes at 1e6 chunks, and what nprobe and an HNSW coarse quantizer buy (issue 15).

    .venv/bin/python -m bench.scale --chunks 1e6 --k 8     # once: builds /tmp/forget-guard-bench/index-1000000
    .venv/bin/python -u -m bench.ivf_search

Reads the 1e6 synthetic chunks' vectors from the scale bench's registry and takes the exact top 8 of each forget10
paraphrased question (brute force). Then builds the guard's IVF-SQ8 (4,096 lists, 40 training vectors a list) with
a flat coarse quantizer, and again with an HNSW one over the same centroids, and prints search p50/p99 (one thread,
one query at a time) and recall@8 against the exact top 8, for nprobe 16, 32 and 64.

Note: the guard itself builds 2,048 lists at 1e6 (`guard.forget.vectors.choose`), and since 8699f39 4-bit
fast-scan codes re-ranked on 8-bit ones. `bench.scale` and `bench.ivf_layouts` compare layouts on what matters:
whether each question finds its own entry.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time

import faiss
import numpy as np

from bench.lib.corpus import WORK
from guard.eval.data import Tofu
from guard.forget.embedder import make_embedder
from guard.forget.sqlite import REGISTRY_FILE
from guard.forget.vectors import TRAIN_PER_LIST
from guard.settings import REPO_ROOT

NLIST = 4096
DIM = 384


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    faiss.omp_set_num_threads(1)
    db = sqlite3.connect(WORK / "index-1000000" / REGISTRY_FILE)
    n = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    x = np.empty((n, DIM), dtype=np.float32)
    for i, (blob,) in enumerate(db.execute("SELECT vector FROM chunks ORDER BY id")):
        x[i] = np.frombuffer(blob, dtype=np.float32)
    tofu = Tofu(REPO_ROOT.parent / "shared" / "data" / "tofu")
    queries = (
        make_embedder("minilm")
        .embed([r["paraphrased_question"] for a in tofu.authors("forget10") for r in a.rows])
        .astype(np.float32)
    )
    exact = faiss.IndexFlatIP(DIM)
    exact.add(x)
    _, truth = exact.search(queries, 8)
    del exact
    sample = x[np.random.default_rng(0).choice(n, NLIST * TRAIN_PER_LIST, replace=False)]
    flat = faiss.IndexFlatIP(DIM)
    ivf = faiss.IndexIVFScalarQuantizer(flat, DIM, NLIST, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    ivf.train(sample)
    ivf.add(x)
    print(f"{n:,} chunks; trained and filled in {time.perf_counter() - started:.0f} s")
    lists = ivf.invlists
    assert lists is not None
    sizes = np.array([lists.list_size(i) for i in range(NLIST)])
    print(f"list sizes p50 {np.median(sizes):.0f}, p99 {np.percentile(sizes, 99):.0f}, max {sizes.max()}")
    alone = [timed(lambda q: flat.search(q, 32), q) for q in queries]
    print(f"flat coarse quantizer alone (32 nearest of {NLIST}): p50 {statistics.median(alone):.3f} ms")
    print("| coarse quantizer | nprobe | search p50 ms | p99 ms | recall@8 |\n|---|---|---|---|---|")
    report("flat", ivf, queries, truth)
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = 128
    hnsw.add(flat.reconstruct_n(0, NLIST))
    ivf2 = faiss.IndexIVFScalarQuantizer(hnsw, DIM, NLIST, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    ivf2.train(sample)  # the scalar quantizer only: the coarse one already holds NLIST centroids
    ivf2.add(x)
    report("HNSW (M 32, efSearch 128)", ivf2, queries, truth)


def timed(fn: object, q: np.ndarray) -> float:
    started = time.perf_counter()
    fn(q[None, :])  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def report(label: str, index: faiss.IndexIVF, queries: np.ndarray, truth: np.ndarray) -> None:
    for nprobe in (16, 32, 64):
        index.nprobe = nprobe
        times, recall = [], []
        for q, best in zip(queries, truth, strict=True):
            started = time.perf_counter()
            _, ids = index.search(q[None, :], 8)
            times.append((time.perf_counter() - started) * 1000)
            recall.append(len(set(ids[0].tolist()) & set(best.tolist())) / 8)
        print(
            f"| {label} | {nprobe} | {statistics.median(times):.3f} | {np.percentile(times, 99):.3f} | "
            f"{np.mean(recall):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
