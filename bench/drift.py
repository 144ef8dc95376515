"""Drift in the 4-bit fast-scan IVF: chunks of a domain its codes were not trained on, merged in later.

    .venv/bin/python -u -m bench.drift [--chunks 300000] [--filler 20000]

In one process, with the guard's own `VectorIndex` (one faiss thread):
1. `--chunks` synthetic chunks around real MiniLM sentence vectors (as `bench.overhead.build_index` makes them),
   built into the fast-scan IVF the guard chooses for that size (trained on a sample of them);
2. forget10's 20 authors (their answers' sentences, embedded with MiniLM) and `--filler` more sentences of the
   same kind are added and merged into the IVF, in two variants side by side:
   - "same domain": as they are (TOFU biographies, like the training sample);
   - "new domain": the same vectors under one fixed random rotation of the space. Every similarity among them
     and their questions is kept, but they lie where the codes were never trained: a stress case of a topic the
     index never held (real new topics drift less);
3. each author's 20 paraphrased questions (rotated alike) are searched; found = the author's entry among the top
   8 at its exact best score (within 0.01), as in `bench.scale`;
4. the index's `drifted` verdict, then the rebuild the guard would start (trained on a fresh sample of every
   chunk, as `ForgetIndex` does), and the same search again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.lib.corpus import load_corpus
from guard.eval.data import Tofu
from guard.forget.embedder import make_embedder
from guard.forget.vectors import RECENT_MAX, TRAIN_PER_LIST, VectorIndex, choose, pin_threads
from guard.settings import REPO_ROOT
from guard.text import sentences


def found_share(
    index: VectorIndex, owner: np.ndarray, asker: np.ndarray, queries: np.ndarray, exact: np.ndarray
) -> float:
    """Share of the questions whose author is among the top 8 at its exact best score (within 0.01)."""
    scores, ids = index.search(queries, 8)
    hits = 0
    for q in range(len(queries)):
        mine = [s for s, i in zip(scores[q], ids[q], strict=True) if i >= 0 and owner[i] == asker[q]]
        hits += bool(mine) and max(mine) >= exact[q] - 0.01
    return hits / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=300_000)
    parser.add_argument("--filler", type=int, default=RECENT_MAX)
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()
    pin_threads(1)
    tofu = Tofu(args.tofu)
    emb = make_embedder("minilm")
    corpus = load_corpus(tofu, emb)
    gen = np.random.default_rng(0)
    base = corpus.base
    i, j = gen.integers(0, len(base), args.chunks), gen.integers(0, len(base), args.chunks)
    synthetic = base[i] + 0.35 * base[j] + gen.standard_normal((args.chunks, base.shape[1])).astype(np.float32) * 0.02
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)

    authors = tofu.authors("forget10")
    chunks = [[s for answer in a.answers for s in sentences(answer)] for a in authors]
    vectors = emb.embed([s for c in chunks for s in c])
    owner_of_new = np.repeat(np.arange(len(authors)), [len(c) for c in chunks])
    questions = emb.embed([row["paraphrased_question"] for a in authors for row in a.rows])
    asker = np.repeat(np.arange(len(authors)), [len(a.rows) for a in authors])
    filler = base[gen.integers(0, len(base), args.filler)] + 0.35 * base[gen.integers(0, len(base), args.filler)]
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    rotation = np.linalg.qr(gen.standard_normal((base.shape[1], base.shape[1])))[0].astype(np.float32)

    print(f"{args.chunks:,} synthetic chunks + forget10 ({len(vectors)} chunks) + {args.filler:,} filler, merged")
    print("| domain | index | drifted | merged below the floor | found (questions) | built in s |")
    print("|---|---|---|---|---|---|")
    for domain, turn in (("same domain", np.eye(base.shape[1], dtype=np.float32)), ("new domain", rotation)):
        new = np.vstack([vectors, filler]).astype(np.float32) @ turn
        queries = (questions @ turn).astype(np.float32)
        exact = np.array(
            [float((new[: len(vectors)][owner_of_new == asker[q]] @ queries[q]).max()) for q in range(len(queries))]
        )
        ids_base = np.arange(args.chunks, dtype=np.int64)
        ids_new = np.arange(args.chunks, args.chunks + len(new), dtype=np.int64)
        owner = np.full(args.chunks + len(new), -1, dtype=np.int64)
        owner[args.chunks : args.chunks + len(vectors)] = owner_of_new
        plan = choose(args.chunks)
        started = time.perf_counter()
        sample = synthetic[gen.choice(args.chunks, plan.nlist * TRAIN_PER_LIST, replace=False)]
        index = VectorIndex.build(base.shape[1], args.chunks, sample, [(ids_base, synthetic)])
        took = time.perf_counter() - started
        index.add(ids_new, new)
        index.merge_recent()
        share = index.outliers / max(index.merged, 1)
        print(
            f"| {domain} | built before, merged into | {index.drifted} | {share:.1%} | "
            f"{found_share(index, owner, asker, queries, exact):.1%} | {took:.0f} |",
            flush=True,
        )
        everything = np.vstack([synthetic, new])
        started = time.perf_counter()
        sample = everything[gen.choice(len(everything), plan.nlist * TRAIN_PER_LIST, replace=False)]
        rebuilt = VectorIndex.build(
            base.shape[1], len(everything), sample, [(np.concatenate([ids_base, ids_new]), everything)]
        )
        took = time.perf_counter() - started
        print(
            f"| {domain} | rebuilt (what drift starts) | {rebuilt.drifted} | – | "
            f"{found_share(rebuilt, owner, asker, queries, exact):.1%} | {took:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
