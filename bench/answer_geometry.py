"""The answer check's geometry on wiki-qa, offline (issue 35): how often an article's own sentences, retrieved by a
question, hold its answer's new words, and how often another article's do.

Every sentence of the 23 wiki-qa articles is embedded with MiniLM (as the guard chunks documents); a sample of
questions (seed 0) is answered "The answer is <gold answer>." Per (question, article) pair, the rule of
`guard.checks.answers` is applied as the guard applies it: the article counts when the question comes within
`input.asked_threshold` of it, and the answer's new words are in its 8 best sentences for the question, in a
sentence that shares a word with the question or holds a telling value, at `output.answer_coverage` or more.
Reported for the even-numbered articles (designed on) and the odd-numbered ones (checked on): the share of
questions whose own article counts, and the share of (question, other article) pairs that count.

    PYTHONPATH=. .venv/bin/python -m bench.answer_geometry [--questions 1500] [--wiki DIR]

This is the score geometry alone: no retrieval among other entries' chunks, no input check, no QA reading (the
question and answer read together), no test of names the article never mentions. `guard eval wiki` measures the
guard itself.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from guard.checks.answers import ASKED_K, answering, new_words, share
from guard.forget.chunkwords import ChunkWords, content_words
from guard.forget.embedder import make_embedder
from guard.policy import InputPolicy, OutputPolicy
from guard.text import sentences

DEFAULT_WIKI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wiki-qa"


class Words:
    """What `answering` asks of the index: the words of chunks."""

    def __init__(self, store: ChunkWords) -> None:
        self.store = store

    def words_found(self, chunk_ids: Sequence[int], words: Sequence[str]) -> set[str]:
        return self.store.found(chunk_ids, words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=1500)
    parser.add_argument("--wiki", type=Path, default=DEFAULT_WIKI)
    args = parser.parse_args()
    with gzip.open(args.wiki / "articles.json.gz", "rt") as f:
        data = json.load(f)["data"]
    chunks: list[str] = []
    owner: list[int] = []
    asked: list[tuple[int, str, str]] = []
    for i, article in enumerate(data):
        for paragraph in article["paragraphs"]:
            said = sentences(paragraph["context"])
            chunks += said
            owner += [i] * len(said)
            asked += [(i, qa["question"], qa["answers"][0]["text"]) for qa in paragraph["qas"]]
    store = ChunkWords()
    store.add([str(i) for i in owner], list(range(len(chunks))), chunks)
    words = Words(store)
    sample = random.Random(0).sample(asked, min(args.questions, len(asked)))
    embedder = make_embedder("minilm")
    scores = np.asarray(embedder.embed([q for _, q, _ in sample])) @ np.asarray(embedder.embed(chunks)).T
    of = [np.flatnonzero(np.array(owner) == j) for j in range(len(data))]
    floor, coverage = InputPolicy().asked_threshold, OutputPolicy().answer_coverage
    counts = {half: {"own": 0, "questions": 0, "other": 0, "pairs": 0} for half in ("even", "odd")}
    for row, (i, question, answer) in enumerate(sample):
        half = counts["even" if i % 2 == 0 else "odd"]
        new = new_words(f"The answer is {answer}.", question)
        about = sorted(content_words(question))
        half["questions"] += 1
        for j, ids in enumerate(of):
            best = ids[np.argsort(-scores[row, ids])[:ASKED_K]]
            hit = False
            if new and scores[row, best[0]] >= floor:
                proper = store.details_among(str(j), new)
                found, _ = answering(words, best.tolist(), [], new, about, proper)  # type: ignore[arg-type]
                hit = bool(found) and share(found, new, proper) >= coverage
            if j == i:
                half["own"] += hit
            else:
                half["pairs"] += 1
                half["other"] += hit
    print(f"{len(sample)} questions, {len(chunks)} sentences of {len(data)} articles")
    print("| articles | questions | own article counts | (question, other article) pairs that count |")
    print("|---|---|---|---|")
    for name, c in counts.items():
        own = c["own"] / max(c["questions"], 1)
        other = c["other"] / max(c["pairs"], 1)
        print(f"| {name} | {c['questions']} | {own:.1%} | {other:.3%} ({c['other']} of {c['pairs']}) |")


if __name__ == "__main__":
    main()
