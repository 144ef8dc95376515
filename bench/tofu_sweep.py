"""Sweep the check thresholds on TOFU forget10: false blocks against misses, from scores computed once.

For every retain90 / real_authors question (and its gold answer) and every forget10 question (and its gold or
paraphrased answer), it computes the input score (best cosine of the question's segments to any forget chunk),
the output score (best cosine of the answer's sentences), name mentions and verbatim n-gram hits. A question is
blocked if any check fires on the question or on the answer a memorizing model would give; a forget question is
missed if none does. Prints one row per (input threshold, output threshold, n-gram size).

    .venv/bin/python bench/tofu_sweep.py [--tofu ../shared/data/tofu]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np

from guard.checks.conversation import Conversation, input_pieces
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import make_embedder
from guard.forget.index import ForgetIndex
from guard.forget.ngrams import NgramIndex
from guard.forget.sqlite import REGISTRY_FILE, SqliteRegistry
from guard.text import sentences

INPUT = (0.62, 0.66, 0.70, 0.74)
OUTPUT = (0.72, 0.76, 0.80)
NGRAMS = (8, 10, 12)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    tofu = Tofu(parser.parse_args().tofu)
    emb = make_embedder("minilm")
    registry = SqliteRegistry(Path(tempfile.mkdtemp()) / REGISTRY_FILE, emb.dim)
    index = await ForgetIndex.open(registry, emb, ngram_words=8, typo_min_chars=6)
    authors = tofu.authors("forget10")
    grams = {n: NgramIndex(n) for n in NGRAMS}
    for a in authors:
        await index.add(a.name, [], a.answers, None)
        for g in grams.values():
            g.add(a.name, [" ".join(s for d in a.answers for s in sentences(d))])

    def best(texts: list[str]) -> float:
        return max((max(b.values(), default=0.0) for b in index.memory.search(emb.embed(texts))), default=0.0)

    def scores(question: str, answer: str) -> tuple[float, bool, float, dict[int, bool]]:
        named = bool(index.memory.find_names(question) or index.memory.find_names(answer))
        return (
            best([p.text for p in input_pieces(Conversation.of([("q", question)], 3).segments())]),
            named,
            best(sentences(answer)),
            {n: bool(grams[n].find(answer)) for n in NGRAMS},
        )

    forget_rows = [r for a in authors for r in a.rows]
    sets = {
        "retain": [scores(r["question"], r["answer"]) for r in tofu.rows("retain90")],
        "real": [scores(r["question"], r["answer"]) for r in tofu.rows("real_authors")],
        "forget": [scores(r["question"], r["answer"]) for r in forget_rows],
        "paraphrased": [scores(r["paraphrased_question"], r["paraphrased_answer"]) for r in forget_rows],
    }
    print(" in   out   n | retain FB  real FB | forget miss  para miss")
    for ti in INPUT:
        for to in OUTPUT:
            for n in NGRAMS:

                def blocked(
                    s: tuple[float, bool, float, dict[int, bool]], ti: float = ti, to: float = to, n: int = n
                ) -> bool:
                    return s[0] >= ti or s[1] or s[2] >= to or s[3][n]

                fb = [np.mean([blocked(s) for s in sets[k]]) for k in ("retain", "real")]
                miss = [np.mean([not blocked(s) for s in sets[k]]) for k in ("forget", "paraphrased")]
                print(f"{ti:.2f} {to:.2f} {n:2d} | {fb[0]:8.2%} {fb[1]:8.2%} | {miss[0]:10.2%} {miss[1]:10.2%}")


if __name__ == "__main__":
    asyncio.run(main())
