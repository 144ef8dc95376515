"""Described subjects (issue 14, part 3): how many questions are refused only because one of an entry's rare fact
values and meaning point at it (`guard.checks.decide.described`), and what that costs in false blocks.

No upstream: the real input checks (MiniLM, multilingual-e5-small, names, sounds, fact values) and the default
policies run in-process. forget10's first 18 authors (not forget01's two, which `guard eval tofu --lang` uses) are
registered in English, name and gold answers. Forget questions: theirs, in English (question, paraphrased,
perturbed) and in each language of the multilingual TOFU (retain99_L rows 3600-3959 are these 18 authors).
Controls: 1,000 retain90 questions (English), 500 retain99_L questions of the other authors per language.

    .venv/bin/python -m bench.described [--langs en,fr,ru,ja,ar,hi] [--tofu DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from guard.checks.conversation import Conversation
from guard.checks.evidence import INDEX, MEANING, Action, Verdict
from guard.checks.stages import Reading, input_checks
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import make_embedder
from guard.forget.meaning import MeaningIndex, VectorCache
from guard.forget.registry import Entry
from guard.forget.view import MemoryIndex
from guard.policy import PolicySet
from guard.settings import default_policy_file
from guard.text import sentences

AUTHORS = 18
CONTROLS = {"en": 1000, "other": 500}


def questions(tofu: Tofu, lang: str, seed: int) -> tuple[list[tuple[str, int]], list[str]]:
    if lang == "en":
        rows = tofu.rows("forget10")[: AUTHORS * 20]
        forget = [
            (r[k], i // 20)
            for k in ("question", "paraphrased_question", "perturbed_question")
            for i, r in enumerate(rows)
        ]
        controls = [r["question"] for r in random.Random(seed).sample(tofu.rows("retain90"), CONTROLS["en"])]
        return forget, controls
    rows = json.loads((tofu.root.parent / "tofu-multilingual" / f"retain99_{lang}.json").read_text("utf-8"))
    forget = [(r["question"], i // 20) for i, r in enumerate(rows[3600 : 3600 + AUTHORS * 20])]
    controls = [r["question"] for r in random.Random(seed).sample(rows[:3600], CONTROLS["other"])]
    return forget, controls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--langs", default="en,fr,ru,ja,ar,hi")
    parser.add_argument("--tofu", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tofu = Tofu(args.tofu)
    policies = PolicySet.load(default_policy_file())
    minilm, e5 = make_embedder("minilm"), make_embedder("e5")
    view = MemoryIndex(
        minilm.dim, ngram_words=12, typo_min_chars=6, meaning=MeaningIndex(e5, VectorCache(None, e5.name))
    )
    next_id = 0
    for i, author in enumerate(tofu.authors("forget10")[:AUTHORS]):
        chunks = [s for answer in author.answers for s in sentences(answer)]
        ids = list(range(next_id, next_id + len(chunks)))
        next_id += len(chunks)
        view.add(Entry(str(i), author.name, (), None, 0.0, 1, 1, "enforce"), ids, chunks, minilm.embed(chunks))
    checks = input_checks()

    def verdict(text: str) -> Verdict:
        segments = Conversation.of([("messages[0].content", text)], policies.settings.window_turns).segments()
        needs = checks.needs(segments)
        plain, foreign = needs.get(INDEX, []), needs.get(MEANING, [])
        vectors = {INDEX: dict(zip(plain, minilm.embed(plain), strict=True)) if plain else {}}
        if foreign:
            vectors[MEANING] = dict(zip(foreign, e5.embed(foreign), strict=True))
        return checks.verdict(Reading(tuple(segments), policies, view), vectors)

    def only_described(v: Verdict) -> bool:
        return v.action is Action.refuse and all(m.kind == "described" for m in v.matches)

    print(f"{AUTHORS} forget10 authors registered in English; default policy {default_policy_file()}")
    head = ["lang", "forget questions", "refused", "by `described` only", "controls", "refused", "by `described` only"]
    print("| " + " | ".join([*head, "s"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for lang in args.langs.split(","):
        start = time.perf_counter()
        forget, controls = questions(tofu, lang, args.seed)
        fv = [(verdict(q), str(owner)) for q, owner in forget]
        cv = [verdict(q) for q in controls]
        refused = sum(v.action is Action.refuse for v, _ in fv)
        right = sum(only_described(v) and v.matches[0].entry_id == owner for v, owner in fv)
        wrong = sum(only_described(v) and v.matches[0].entry_id != owner for v, owner in fv)
        c_refused = sum(v.action is Action.refuse for v in cv)
        c_described = sum(only_described(v) for v in cv)
        print(
            f"| {lang} | {len(fv)} | {refused} | {right} (+{wrong} as another forget author) | {len(cv)} | "
            f"{c_refused} | {c_described} | {time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
