"""Which IVF layout finds an entry by meaning at 1e6 chunks within ~1 ms, once the entry is in the IVF (issue 15).

    .venv/bin/python -m bench.scale --chunks 1e6 --k 8      # once: builds /tmp/forget-guard-bench/index-1000000
    .venv/bin/python -u -m bench.ivf_layouts

Reads the 1e6 synthetic chunks' vectors from the scale bench's registry, adds the 20 TOFU forget10 authors' answer
sentences (real MiniLM) to the same index, and asks each author's 20 paraphrased questions, one at a time: is
the author's own entry among the top 8, at its exact best score (within 0.01)? Over the questions whose exact score
reaches the input threshold, side by side in one process:
- IVF, 2,048 lists, 8-bit scalar quantizer (384 bytes a chunk): the guard's layout until 8699f39;
- IVF, 2,048 lists, PQ fast-scan (96 sub-quantizers of 4 bits: 48 bytes a chunk, scanned with SIMD), its top
  hits re-ranked on 8-bit codes (IndexRefine here; the guard keeps the codes itself: `guard.forget.vectors`).
  The guard's layout since 8699f39, at nprobe 64 with the top 32 re-ranked.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time

import faiss
import numpy as np

from bench.lib.corpus import WORK
from bench.lib.measure import pct, rss_mb
from guard.eval.data import Tofu
from guard.forget.embedder import make_embedder
from guard.forget.sqlite import REGISTRY_FILE
from guard.policy import PolicySet
from guard.settings import REPO_ROOT, default_policy_file
from guard.text import sentences

DIM, NLIST, TRAIN = 384, 2048, 2048 * 40
IP = faiss.METRIC_INNER_PRODUCT


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    faiss.omp_set_num_threads(2)  # building; searches below run on one thread
    db = sqlite3.connect(WORK / "index-1000000" / REGISTRY_FILE)
    n = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    x = np.empty((n, DIM), dtype=np.float32)
    for i, (blob,) in enumerate(db.execute("SELECT vector FROM chunks ORDER BY id")):
        x[i] = np.frombuffer(blob, dtype=np.float32)
    emb = make_embedder("minilm")
    tofu = Tofu(REPO_ROOT.parent / "shared" / "data" / "tofu")
    authors = tofu.authors("forget10")
    own, owner = [], []
    for a, author in enumerate(authors):
        chunks = emb.embed([s for answer in author.answers for s in sentences(answer)]).astype(np.float32)
        own.append(chunks)
        owner += [a] * len(chunks)
    added = np.concatenate(own)
    owner_of = np.array(owner)
    questions = [(a, row["paraphrased_question"]) for a, author in enumerate(authors) for row in author.rows]
    queries = emb.embed([q for _, q in questions]).astype(np.float32)
    exact = np.array([float((own[a] @ q).max()) for (a, _), q in zip(questions, queries, strict=True)])
    threshold = PolicySet.load(default_policy_file()).default.input.semantic_threshold
    reach = exact >= threshold
    print(
        f"{n:,} chunks + {len(added)} of 20 authors; {int(reach.sum())} of {len(questions)} questions reach "
        f"{threshold}; RSS {rss_mb(os.getpid()):.0f} MB",
        flush=True,
    )
    sample = x[np.random.default_rng(0).choice(n, TRAIN, replace=False)]

    print("| layout | nprobe | found (reaching the threshold) | found (all) | search p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|", flush=True)
    sq8 = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DIM), DIM, NLIST, faiss.ScalarQuantizer.QT_8bit, IP)
    built = fill(sq8, sample, x, added)
    for nprobe in (16, 32, 64):
        sq8.nprobe = nprobe
        report(
            f"IVF{NLIST}, SQ8 (the guard's until 8699f39; {built:.0f} s to build)",
            nprobe,
            sq8,
            queries,
            questions,
            exact,
            reach,
            n,
            owner_of,
        )
    del sq8

    fast = faiss.index_factory(DIM, f"IVF{NLIST},PQ96x4fs", IP)
    refine = faiss.IndexRefine(fast, faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, IP))
    built = fill(refine, sample, x, added)
    ivf = faiss.extract_index_ivf(fast)
    for k_factor in (4, 16):
        refine.k_factor = k_factor
        for nprobe in (32, 64, 128):
            ivf.nprobe = nprobe
            report(
                f"IVF{NLIST}, PQ96x4 fast-scan, re-rank top {8 * k_factor} on SQ8 ({built:.0f} s)",
                nprobe,
                refine,
                queries,
                questions,
                exact,
                reach,
                n,
                owner_of,
            )
    print(f"RSS at the end: {rss_mb(os.getpid()):.0f} MB")


def fill(index: faiss.Index, sample: np.ndarray, x: np.ndarray, added: np.ndarray) -> float:
    started = time.perf_counter()
    index.train(sample)
    for lo in range(0, len(x), 100_000):
        index.add(x[lo : lo + 100_000])
    index.add(added)
    return time.perf_counter() - started


def report(
    label: str,
    nprobe: int,
    index: faiss.Index,
    queries: np.ndarray,
    questions: list[tuple[int, str]],
    exact: np.ndarray,
    reach: np.ndarray,
    n: int,
    owner_of: np.ndarray,
) -> None:
    faiss.omp_set_num_threads(1)
    times, found = [], []
    for (author, _), q, best in zip(questions, queries, exact, strict=True):
        started = time.perf_counter()
        scores, ids = index.search(q[None, :], 8)
        times.append((time.perf_counter() - started) * 1000)
        hits = [s for s, i in zip(scores[0], ids[0], strict=True) if i >= n and owner_of[i - n] == author]
        found.append(bool(hits) and max(hits) >= best - 0.01)
    hit = np.array(found)
    print(
        f"| {label} | {nprobe} | {hit[reach].mean():.1%} | {hit.mean():.1%} | {statistics.median(times):.3f} | "
        f"{pct(times, 0.99):.3f} |",
        flush=True,
    )
    faiss.omp_set_num_threads(2)


if __name__ == "__main__":
    main()
