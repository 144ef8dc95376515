"""How much higher multilingual-e5-small scores two texts of one language than the same texts across languages
(the basis of `guard.forget.meaning.SAME_LANGUAGE_OFFSET`).

    .venv/bin/python -m bench.same_language [--langs fr,ru,ja,ar,hi] [--answers 300]

Per language of the multilingual TOFU: forget01's two authors' sentences in English and in L; a sample of retain99
answers in L (other authors: none of them should match). For each answer, its best score against the English
sentences and against the sentences in L; reported: p50 and max of both and the median gap. Then the share of
answers at or above the output threshold with and without the offset.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics

import numpy as np

from guard.eval.data import DEFAULT_DIR, Tofu
from guard.eval.multilingual import DEFAULT_ML_DIR
from guard.forget.embedder import make_embedder
from guard.forget.meaning import SAME_LANGUAGE_OFFSET
from guard.language import english
from guard.policy import PolicySet
from guard.settings import default_policy_file
from guard.text import sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--langs", default="fr,ru,ja,ar,hi")
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    e5 = make_embedder("e5")
    threshold = PolicySet.load(default_policy_file()).default.output.multilingual_threshold
    english_sentences = [s for a in Tofu(DEFAULT_DIR).authors("forget01") for t in a.answers for s in sentences(t)]
    on_english = e5.embed(english_sentences)
    print(f"{args.answers} retain99 answers per language; output threshold {threshold}, offset {SAME_LANGUAGE_OFFSET}")
    print(
        "\n| lang | vs English sentences p50 / max | vs sentences in L p50 / max | median gap | "
        "at threshold vs L, raw | with the offset |"
    )
    print("|---|---|---|---|---|---|")
    for lang in args.langs.split(","):
        rows = json.loads((DEFAULT_ML_DIR / f"forget01_{lang}.json").read_text("utf-8"))
        on_lang = e5.embed([s for r in rows for s in sentences(r["answer"])])
        retain = json.loads((DEFAULT_ML_DIR / f"retain99_{lang}.json").read_text("utf-8"))[:3600]
        sample = random.Random(args.seed).sample(retain, args.answers)
        cross, same = [], []
        for r in sample:
            pieces = [s for s in sentences(r["answer"]) if not english(s)] or [r["answer"]]
            vectors = e5.embed(pieces)
            cross.append(float((vectors @ on_english.T).max()))
            same.append(float((vectors @ on_lang.T).max()))
        gap = statistics.median(b - a for a, b in zip(cross, same, strict=True))
        over = np.mean([s >= threshold for s in same])
        kept = np.mean([max(c, s - SAME_LANGUAGE_OFFSET) >= threshold for c, s in zip(cross, same, strict=True)])
        print(
            f"| {lang} | {statistics.median(cross):.3f} / {max(cross):.3f} | {statistics.median(same):.3f} / "
            f"{max(same):.3f} | {gap:.3f} | {over:.1%} | {kept:.1%} |"
        )


if __name__ == "__main__":
    main()
