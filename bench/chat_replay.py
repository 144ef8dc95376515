"""Where an 8-turn chat's input check spends its time at a large index, in process: cutting, embedding, deciding,
and the garbage collector's pauses.

    .venv/bin/python -u -m bench.chat_replay [--chunks 1e6] [--first-stage]

The synthetic registry of `bench.overhead` (built on first use) is opened as `guard serve` opens it; the chats
are `bench.overhead.conversation`'s (short TOFU questions, each request re-sending the previous seven user
turns). 35 chats are checked as the collector runs by default, then 35 after `gc.freeze()` (what `guard serve`
does once started); `gc.callbacks` times every collection. Last, a cProfile of deciding five more. With
`--first-stage` the texts are embedded as `guard serve` embeds them (int8 first, the float model near a threshold;
`guard.pipeline.cascade`), and how many each model embedded is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.lib.corpus import WORK, build_index, conversation, load_corpus
from bench.lib.staged import staged
from guard.checks.conversation import Conversation
from guard.checks.decide import floors
from guard.checks.evidence import INDEX, Segment
from guard.checks.stages import Reading, input_checks
from guard.eval.data import Tofu
from guard.forget.embedder import CachedEmbedder, make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.forget.vectors import pin_threads
from guard.policy import PolicySet
from guard.settings import REPO_ROOT, default_policy_file

pauses: list[tuple[int, float]] = []
_started: dict[str, float] = {}


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started["at"] = time.perf_counter()
    else:
        pauses.append((int(info["generation"]), (time.perf_counter() - _started["at"]) * 1000))


async def replay(n: int, tofu: Tofu, first_stage: bool) -> None:
    pin_threads(1)
    emb = CachedEmbedder(make_embedder("minilm"), 8192)
    corpus = load_corpus(tofu, emb)
    index = await ForgetIndex.open(
        SqliteRegistry(WORK / f"index-{n}" / REGISTRY_FILE, emb.dim), emb, ngram_words=12, typo_min_chars=6
    )
    view, checks = index.memory, input_checks()
    policies = PolicySet.load(default_policy_file())
    fast = CachedEmbedder(make_embedder("minilm-fast"), 8192) if first_stage else None
    lines = floors(policies)
    staged_counts: Counter[str] = Counter()
    chats = conversation(corpus, random.Random(1), False, 8, 40) + conversation(corpus, random.Random(2), False, 8, 40)

    def check(messages: list[dict[str, str]], profile: cProfile.Profile | None = None) -> tuple[float, ...]:
        turns = tuple(Segment(f"messages[{i}].content", m["content"], m["role"]) for i, m in enumerate(messages))
        t0 = time.perf_counter()
        plan_segments = tuple(Conversation(turns, policies.settings.window_turns).segments())
        plan = checks.plan(plan_segments, view.stamp)
        to_read = plan.to_read()
        texts = checks.needs(to_read).get(INDEX, [])
        t1 = time.perf_counter()
        if fast is None:
            vectors = dict(zip(texts, emb.embed(texts), strict=True))
        else:
            found, counts, _ = staged(view, emb, fast, texts, checks.passages(to_read), lines)
            staged_counts.update(counts)
            vectors = dict(zip(texts, found, strict=True))
        t2 = time.perf_counter()
        if profile:
            profile.enable()
        checks.decide(plan, Reading(plan_segments, policies, view), {INDEX: vectors})
        if profile:
            profile.disable()
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000

    for chat in chats[:5]:  # warm-up
        check(chat)
    gc.callbacks.append(_timed)
    print(
        "| collector | input check p50 ms | p95 | cut p50 | embed p50 | decide p50 | decide max | "
        "collections | longest gen-2 pauses, ms |\n|---|---|---|---|---|---|---|---|---|"
    )
    for label, part in (("as by default", chats[5:40]), ("after gc.freeze()", chats[40:75])):
        if label != "as by default":
            gc.freeze()
        pauses.clear()
        rows = [check(chat) for chat in part]
        total = [sum(r) for r in rows]
        longest = sorted((ms for g, ms in pauses if g == 2), reverse=True)[:3]
        print(
            f"| {label} | {statistics.median(total):.1f} | {statistics.quantiles(total, n=20)[18]:.1f} | "
            f"{statistics.median(r[0] for r in rows):.1f} | {statistics.median(r[1] for r in rows):.1f} | "
            f"{statistics.median(r[2] for r in rows):.1f} | {max(r[2] for r in rows):.1f} | {len(pauses)} | "
            f"{', '.join(f'{ms:.0f}' for ms in longest) or '–'} |"
        )
    if fast is not None:
        print(f"\ntexts per model (int8 first stage): {dict(staged_counts)}")
    profile = cProfile.Profile()
    for chat in chats[75:80]:
        check(chat, profile)
    print("\ndeciding five chats (cumulative):")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=float, default=1e6)
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    parser.add_argument("--first-stage", action="store_true", help="embed as the guard does: int8 first")
    args = parser.parse_args()
    n, tofu = int(args.chunks), Tofu(args.tofu)
    emb = make_embedder("minilm")
    build_index(WORK / f"index-{n}", n, load_corpus(tofu, emb), emb.dim)
    asyncio.run(replay(n, tofu, args.first_stage))


if __name__ == "__main__":
    main()
