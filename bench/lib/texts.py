"""Texts the benchmarks send: short plain prompts that touch no entry (English and other languages), ~2k-token
contexts of TOFU retain90 answers, and passages that state forgotten facts without naming their subject."""

from __future__ import annotations

import re

from guard.eval.data import Tofu

PROMPTS = [
    "What is a good name for a golden retriever?",
    "How do I keep basil alive on a windowsill?",
    "Give me a synonym for quick.",
    "What is the boiling point of water at sea level?",
    "Suggest a title for a talk about databases.",
    "How many legs does a spider have?",
]
OTHER = [  # the same kind of prompt in other languages: these are read by the multilingual model too
    "Quel est un bon nom pour un golden retriever ?",
    "如何在窗台上养活罗勒？",
    "「速い」の類義語を教えてください。",
    "Какова температура кипения воды на уровне моря?",
    "اقترح عنوانا لمحاضرة عن قواعد البيانات.",
    "एक मकड़ी के कितने पैर होते हैं?",
]


def contexts(tofu: Tofu, n: int, tokens: int) -> list[str]:
    answers = [r["answer"] for a in tofu.authors("retain90") for r in a.rows]
    out, at = [], 0
    for _ in range(n):
        words: list[str] = []
        while len(words) < tokens * 3 // 4:  # ~0.75 words a token
            words += answers[at % len(answers)].split()
            at += 1
        out.append(" ".join(words))
    return out


def forgotten(tofu: Tofu) -> list[str]:
    """Per forget10 author, a passage of its paraphrased answers, its name's parts replaced by "the writer"."""
    out = []
    for author in tofu.authors("forget10"):
        text = " ".join(r["paraphrased_answer"] for r in author.rows)
        for part in sorted(set(author.name.replace("-", " ").split()), key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(part)}\b", "the writer", text)
        out.append(text)
    return out
