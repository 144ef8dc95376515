"""A lexical first stage for passages, tried and not shipped (bench/RESULTS.md, issue 15): embed a passage's
sentence only if it holds a fact value, a name part or a name of some entry. How much text would it skip, and
which sentences reaching the thresholds would it miss?

    .venv/bin/python -m bench.trials.passage_gate

forget10 registered (MiniLM); the 30 two-thousand-token retain passages of `bench.context` (should pass) and
its 20 passages about forgotten authors with the names removed (should be caught).
"""

from __future__ import annotations

from bench.lib.texts import contexts, forgotten
from guard.checks.conversation import fragment
from guard.eval.data import DEFAULT_DIR, Tofu
from guard.forget.embedder import CachedEmbedder, make_embedder
from guard.forget.registry import Entry
from guard.forget.view import MemoryIndex
from guard.text import sentences


def main() -> None:
    tofu = Tofu(DEFAULT_DIR)
    minilm = CachedEmbedder(make_embedder("minilm"), 8192)
    view = MemoryIndex(minilm.dim, ngram_words=12, typo_min_chars=6)
    next_id = 0
    for i, author in enumerate(tofu.authors("forget10")):
        chunks = [s for answer in author.answers for s in sentences(answer)]
        ids = list(range(next_id, next_id + len(chunks)))
        next_id += len(chunks)
        view.add(Entry(str(i), author.name, (), None, 0.0, 1, 1, "enforce"), ids, chunks, minilm.embed(chunks))
    for name, passages in (("retain passages", contexts(tofu, 30, 2000)), ("forgotten passages", forgotten(tofu))):
        said = [s for p in passages for s in sentences(p) if not fragment(s)]
        best = [max(r.values(), default=0.0) for r in view.search(minilm.embed(said))]
        gate = [bool(view.find_values(s) or view.find_parts(s) or view.find_names(s)) for s in said]
        words = [len(s.split()) for s in said]
        skipped = sum(w for w, g in zip(words, gate, strict=True) if not g) / sum(words)
        print(f"{name}: {len(said)} sentences, {sum(not g for g in gate)} gated out ({skipped:.0%} of the words)")
        for threshold in (0.6, 0.7, 0.8):
            high = [g for b, g in zip(best, gate, strict=True) if b >= threshold]
            print(f"  scoring >= {threshold}: {len(high)}, of which gated out {sum(not g for g in high)}")


if __name__ == "__main__":
    main()
