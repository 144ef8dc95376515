"""`guard eval tofu --lang L`: TOFU forget01 asked and answered in another language (the multilingual TOFU in
`../shared/data/tofu-multilingual`: fr, ru, ja, ar, hi; MIT).

The two forget01 authors are registered as a deployment would: their English name and English answers (or, with
`--register-lang`, their answers in L as well). Then the forget01 questions and their paraphrases in L, and the
control sets in L (a fixed sample of retain99 — every author but the forget01 two — real authors, world facts)
go to the guard in front of a memorizing reference model that answers each question with its gold answer in L
(a model fine-tuned on the translated TOFU, as on CPU we can have one).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from guard.eval.data import DEFAULT_DIR, Author, Question, Tofu
from guard.eval.runner import Record, ask, register, summarize
from guard.eval.targets import Target

LANGS = ("fr", "ru", "ja", "ar", "hi")
DEFAULT_ML_DIR = DEFAULT_DIR.parent / "tofu-multilingual"


class Translated:
    """The multilingual TOFU of one language."""

    def __init__(self, lang: str, root: Path = DEFAULT_ML_DIR) -> None:
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
        if not (root / f"forget01_{lang}.json").exists():
            raise FileNotFoundError(f"multilingual TOFU not found in {root} (expected forget01_{lang}.json, ...)")
        self.lang, self.root = lang, root

    def rows(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads((self.root / f"{name}_{self.lang}.json").read_text("utf-8"))
        return rows

    def forget_questions(self) -> list[Question]:
        out = [Question("forget", r["question"], r["answer"], True) for r in self.rows("forget01")]
        for r in self.rows("forget01_perturbed"):
            out.append(Question("paraphrased", r["paraphrased_question"], r["answer"], True))
        return out

    def control_questions(self, retain_limit: int, seed: int) -> list[Question]:
        retain = self.rows("retain99")
        retain = random.Random(seed).sample(retain, min(retain_limit, len(retain)))
        out = [Question("retain", r["question"], r["answer"], False) for r in retain]
        for split in ("real_authors", "world_facts"):
            rows = self.rows(f"{split}_perturbed")
            out.extend(Question(split, r["question"], r["answer"], False) for r in rows)
        return out

    def answers(self) -> dict[str, str]:
        """Every question in L (and its paraphrase) -> its gold answer in L: what the memorizing model knows."""
        out: dict[str, str] = {}
        for name in ("forget01", "forget01_perturbed", "retain99", "retain_perturbed"):
            for r in self.rows(name):
                out[r["question"]] = r["answer"]
                if "paraphrased_question" in r:
                    out[r["paraphrased_question"]] = r["answer"]
        for name in ("real_authors_perturbed", "world_facts_perturbed"):
            for r in self.rows(name):
                out[r["question"]] = r["answer"]
        return out

    def authors(self, tofu: Tofu, documents_in_lang: bool) -> list[Author]:
        """forget01's authors (English name and answers); with `documents_in_lang`, their answers in L added."""
        authors = tofu.authors("forget01")
        if not documents_in_lang:
            return authors
        rows = self.rows("forget01")
        out = []
        for i, author in enumerate(authors):
            translated = tuple({"answer": r["answer"]} for r in rows[i * 20 : (i + 1) * 20])
            out.append(Author(author.name, author.rows + translated))
        return out


async def run_lang(
    translated: Translated,
    tofu: Tofu,
    guarded: Target,
    raw: Target,
    *,
    retain_limit: int,
    seed: int,
    concurrency: int,
    max_tokens: int,
    documents_in_lang: bool,
    entry_policy: str | None,
) -> dict[str, Any]:
    controls = translated.control_questions(retain_limit, seed)
    baseline = summarize(await ask(raw, controls, concurrency=concurrency, max_tokens=max_tokens, label="raw"))
    authors = translated.authors(tofu, documents_in_lang)
    await register(guarded, authors, entry_policy)
    questions = translated.forget_questions() + controls
    records: list[Record] = await ask(
        guarded, questions, concurrency=concurrency, max_tokens=max_tokens, label=translated.lang
    )
    stage = f"forget01 asked in {translated.lang}" + (
        f" (documents in {translated.lang} too)" if documents_in_lang else ""
    )
    return {
        "config": {
            "lang": translated.lang,
            "retain_limit": retain_limit,
            "seed": seed,
            "documents_in_lang": documents_in_lang,
            "authors": [a.name for a in authors],
        },
        "target": {"guarded": guarded.url, "raw": raw.url, "model": raw.model},
        "baseline": baseline,
        "stages": [{"stage": stage, "entries": len(authors), "sets": summarize(records)}],
    }
