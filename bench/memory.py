"""Where the memory of a loaded forget index goes: each in-memory structure is dropped in turn, the allocator is
trimmed, and the RSS that comes back is that structure's share.

    .venv/bin/python -u -m bench.memory [--chunks 1e6]

The index is the synthetic registry `bench.overhead.build_index` makes (built on first use), opened the way
`guard serve` opens it (`ForgetIndex.open`, MiniLM loaded first so the model is not counted in the index).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import time
from pathlib import Path

from bench.lib.corpus import WORK, build_index, load_corpus
from bench.lib.measure import rss_mb
from guard.eval.data import Tofu
from guard.forget.embedder import Embedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.settings import REPO_ROOT

PARTS = ("values", "parts", "ngrams", "names", "sounds", "_chunk_slot", "_entries", "vectors", "meaning")


def trimmed_rss() -> float:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb(os.getpid())


async def breakdown(directory: Path, emb: Embedder) -> None:
    before = trimmed_rss()
    started = time.perf_counter()
    index = await ForgetIndex.open(
        SqliteRegistry(directory / REGISTRY_FILE, emb.dim), emb, ngram_words=12, typo_min_chars=6
    )
    loaded = trimmed_rss()
    print(f"loaded in {time.perf_counter() - started:.0f} s; RSS {before:.0f} MB before, {loaded:.0f} MB after\n")
    print("| structure | MB |\n|---|---|")
    last = loaded
    for name in PARTS:
        if getattr(index.memory, name, None) is None:
            continue
        setattr(index.memory, name, None)
        now = trimmed_rss()
        print(f"| {name} | {last - now:.0f} |")
        last = now
    print(f"| (the process, MiniLM and what is left) | {last:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=float, default=1e6)
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()
    n = int(args.chunks)
    emb = make_embedder("minilm")
    emb.embed(["warm up"])
    build_index(WORK / f"index-{n}", n, load_corpus(Tofu(args.tofu), emb), emb.dim)
    asyncio.run(breakdown(WORK / f"index-{n}", emb))


if __name__ == "__main__":
    main()
