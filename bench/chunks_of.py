"""What finding an entry's chunks costs the located reading (`guard.forget.view.MemoryIndex.chunks_holding`), at a
million chunks over 50,000 entries: a scan of the chunk -> slot array per look-up, against the per-entry lists the
guard keeps as chunks are mapped (`MemoryIndex._chunks_of`). Side by side in one run; times are medians, and the
one-off cost of mapping every chunk (start-up) is printed too.

    .venv/bin/python -m bench.chunks_of [--chunks 1000000] [--entries 50000] [--lookups 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from guard.forget.embedder import HashEmbedder
from guard.forget.view import MemoryIndex


def _median_ms(fn: object, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    view = MemoryIndex(HashEmbedder().dim, ngram_words=8, typo_min_chars=6)
    rng = np.random.default_rng(0)
    slots = np.sort(rng.integers(0, args.entries, args.chunks)).astype(np.int32)  # an entry's chunks in a row
    started = time.perf_counter()
    view.map_chunks(np.arange(args.chunks, dtype=np.int64), slots.tolist())
    map_ms = (time.perf_counter() - started) * 1000
    wanted = rng.integers(0, args.entries, args.lookups)
    it = iter(np.resize(wanted, args.lookups * 10))
    scan = _median_ms(lambda: np.flatnonzero(view._chunk_slot == int(next(it))), args.lookups)
    looked = _median_ms(lambda: view._chunks_of(int(next(it))), args.lookups)
    same = all(np.array_equal(np.flatnonzero(view._chunk_slot == int(s)), view._chunks_of(int(s))) for s in wanted[:20])
    print(f"{args.chunks:,} chunks, {args.entries:,} entries, {args.lookups} look-ups; same chunks: {same}")
    print("| way | per look-up p50 ms |")
    print("|---|---|")
    print(f"| scan of the chunk -> slot array | {scan:.3f} |")
    print(f"| per-entry lists (the guard) | {looked:.3f} |")
    print(f"scan / lists per look-up: {scan / looked:.0f}x; mapping every chunk (start-up): {map_ms:.0f} ms")


if __name__ == "__main__":
    main()
