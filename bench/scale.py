"""The forget index at scale, in this process: are new entries found by meaning alone, how fast, in how much memory.

    .venv/bin/python -m bench.scale [--chunks 1000000] [--k 8,32,128] [--nprobe 16,32]

`n` synthetic chunks (`bench.overhead.build_index`: real TOFU retain90 sentences under made-up names, vectors of
those sentences mixed, so they crowd the region where biographies lie) are loaded, then the 20 TOFU forget10
authors are added through `ForgetIndex.add` (their answers' sentences embedded by the real MiniLM), as an operator
adds new forget requests to a full index. Each author's 20 paraphrased questions are then searched, one query at
a time, for each k: is the author's own entry among the hits, at its exact best score (a brute-force scan of its
own chunks)? Reported over all questions and over those whose exact score reaches the input threshold (the ones
the check must see), with the search p50/p99 per query and the process's RSS — first with the authors in the
exact index of recent additions (as they are while new), then moved into the IVF (as they are later), for each
nprobe.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench.lib.corpus import WORK, build_index, load_corpus
from bench.lib.measure import pct, rss_mb
from guard.eval.data import Tofu
from guard.forget import upkeep, vectors
from guard.forget.embedder import Embedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.policy import PolicySet
from guard.settings import REPO_ROOT, default_policy_file
from guard.text import sentences


async def measure(n: int, ks: list[int], nprobes: list[int], tofu: Tofu, emb: Embedder) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    directory = WORK / f"index-{n}"
    threshold = PolicySet.load(default_policy_file()).default.input.semantic_threshold
    before = rss_mb(os.getpid())
    started = time.perf_counter()
    index = await ForgetIndex.open(
        SqliteRegistry(directory / REGISTRY_FILE, emb.dim), emb, ngram_words=12, typo_min_chars=6
    )
    print(
        f"{n:,} chunks loaded in {time.perf_counter() - started:.1f} s, {index.memory.vectors.kind}, "
        f"RSS {rss_mb(os.getpid()):.0f} MB (+{rss_mb(os.getpid()) - before:.0f})",
        flush=True,
    )
    try:
        authors = tofu.authors("forget10")
        own: dict[str, np.ndarray] = {}
        ids: list[str] = []
        started = time.perf_counter()
        for author in authors:
            chunks = [s for answer in author.answers for s in sentences(answer)]
            entry = await index.add(author.name, [], chunks, None)
            own[entry.id] = emb.embed(chunks)
            ids.append(entry.id)
        print(f"20 authors added in {time.perf_counter() - started:.1f} s; RSS {rss_mb(os.getpid()):.0f} MB")
        questions = [
            (entry_id, row["paraphrased_question"]) for entry_id, a in zip(ids, authors, strict=True) for row in a.rows
        ]
        queries = emb.embed([q for _, q in questions])
        exact = np.array([float((own[e] @ q).max()) for (e, _), q in zip(questions, queries, strict=True)])
        reach = exact >= threshold
        vectors, memory = index.memory.vectors, index.memory
        print(f"{len(questions)} questions, {int(reach.sum())} of them reach the input threshold {threshold} exactly")
        print(
            "| authors in | nprobe | k | found, all questions | found, those reaching the threshold | "
            "search p50 ms | p99 ms |\n|---|---|---|---|---|---|---|"
        )
        for where in ("recent additions", "the IVF"):
            if where == "the IVF":
                vectors.merge_recent()
            for nprobe in nprobes:
                vectors.set_nprobe(nprobe)
                for k in ks:
                    times, found = [], []
                    for (entry_id, _), q in zip(questions, queries, strict=True):
                        t0 = time.perf_counter()
                        best = memory._best(*vectors.search(q[None, :], k))[0]
                        times.append((time.perf_counter() - t0) * 1000)
                        found.append(best.get(entry_id, -1.0))
                    hit = np.array(found) >= exact - 0.01
                    print(
                        f"| {where} | {nprobe} | {k} | {hit.mean():.1%} | {hit[reach].mean():.1%} | "
                        f"{statistics.median(times):.3f} | {pct(times, 0.99):.3f} |",
                        flush=True,
                    )
        print(f"RSS at the end: {rss_mb(os.getpid()):.0f} MB")
    finally:
        for entry_id in ids:
            await index.remove(entry_id)
        await index.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=float, default=1e6)
    parser.add_argument("--k", default="8,32,128")
    parser.add_argument("--nprobe", default="16,32", help="IVF lists searched per query, each measured")
    parser.add_argument("--nlist", type=int, help="force this many IVF lists (default: the guard's choice)")
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()
    n, tofu, emb = int(args.chunks), Tofu(args.tofu), make_embedder("minilm")
    if args.nlist:  # the other layouts, for comparison: the guard's own choice is `vectors.choose`
        guard_choice = vectors.choose

        def forced(n: int) -> vectors.Plan:
            plan = guard_choice(n)
            return plan if plan.kind == "flat" else vectors.Plan(plan.kind, args.nlist)

        vectors.choose = forced
        setattr(upkeep, "choose", forced)  # noqa: B010 - upkeep imported it by name
    build_index(WORK / f"index-{n}", n, load_corpus(tofu, emb), emb.dim)  # once per size; it runs its own loop
    ks, nprobes = [int(k) for k in args.k.split(",")], [int(p) for p in args.nprobe.split(",")]
    asyncio.run(measure(n, ks, nprobes, tofu, emb))


if __name__ == "__main__":
    main()
