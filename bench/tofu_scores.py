"""How far apart are forget and non-forget texts for MiniLM? The figures behind the default thresholds.

For each of the 20 forget10 authors, the author's gold answers are the forget chunks. Input side: the best cosine
score of each question against its own author's chunks (forget, paraphrased, perturbed) versus against all 20
authors' chunks (retain90, real_authors, world_facts questions). Output side: paraphrased gold answers versus the
retain90 gold answers. Prints percentiles and the share of each set at or above the policy thresholds.

    .venv/bin/python bench/tofu_scores.py [--tofu ../shared/data/tofu]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from guard.forget.embedder import make_embedder
from guard.policy import Policy
from guard.settings import REPO_ROOT
from guard.text import sentences


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tofu", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tofu")
    args = parser.parse_args()
    data = {
        n: json.loads((args.tofu / f"{n}.json").read_text())
        for n in ("forget10", "retain90", "real_authors", "world_facts")
    }
    emb = make_embedder("minilm")
    forget = data["forget10"]
    owner, chunks = [], []
    for i, row in enumerate(forget):
        for sentence in sentences(row["answer"]):
            owner.append(i // 20)
            chunks.append(sentence)
    chunk_vecs = emb.embed(chunks)
    owner_arr = np.array(owner)

    def own_author(texts: list[str]) -> np.ndarray:
        scores = emb.embed(texts) @ chunk_vecs.T
        authors = np.arange(len(texts)) // 20
        return np.array([scores[i, owner_arr == a].max() for i, a in enumerate(authors)])

    def any_author(texts: list[str]) -> np.ndarray:
        return np.asarray((emb.embed(texts) @ chunk_vecs.T).max(axis=1))

    defaults = Policy(name="defaults")
    t_in, t_out = defaults.input.semantic_threshold, defaults.output.semantic_threshold
    sets: list[tuple[str, str, np.ndarray, float, bool]] = [
        ("input", "forget questions", own_author([r["question"] for r in forget]), t_in, True),
        ("input", "paraphrased questions", own_author([r["paraphrased_question"] for r in forget]), t_in, True),
        ("input", "perturbed questions", own_author([r["perturbed_question"] for r in forget]), t_in, True),
        ("input", "retain90 questions", any_author([r["question"] for r in data["retain90"]]), t_in, False),
        ("input", "real_authors questions", any_author([r["question"] for r in data["real_authors"]]), t_in, False),
        ("input", "world_facts questions", any_author([r["question"] for r in data["world_facts"]]), t_in, False),
        ("output", "paraphrased gold answers", own_author([r["paraphrased_answer"] for r in forget]), t_out, True),
        ("output", "retain90 gold answers", any_author([r["answer"] for r in data["retain90"]]), t_out, False),
    ]
    print(f"{'check':6} {'set':26} {'n':>5} {'min':>6} {'p5':>6} {'p50':>6} {'p95':>6} {'max':>6}  >=threshold")
    for check, name, s, threshold, is_forget in sets:
        share = float((s >= threshold).mean())
        tag = "caught" if is_forget else "false hits"
        print(
            f"{check:6} {name:26} {len(s):5d} {s.min():6.3f} {np.percentile(s, 5):6.3f} {np.median(s):6.3f} "
            f"{np.percentile(s, 95):6.3f} {s.max():6.3f}  {share:6.1%} {tag} (t={threshold})"
        )


if __name__ == "__main__":
    main()
