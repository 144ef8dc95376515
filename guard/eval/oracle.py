"""A memorizing reference model: an OpenAI-compatible server that behaves like a model fine-tuned on TOFU.

It answers a question with the gold answer of the most similar TOFU question (by MiniLM similarity over every
forget, retain, real-author and world-fact question), and with a plain reply when nothing is similar enough.
It stands in, on CPU, for the TOFU-finetuned model a GPU user would put behind the guard.

Behaviours (both ends of how a real model treats the guard's rewrite instruction):
- `ignore`: the worst case: instructions are ignored, it always tells what it knows;
- `obey`: the best case: a system message telling it not to reveal a subject (the guard's rewrite) that names the
  question's author, or a redacted question, makes it say it has no information.

`unlearned` simulates a weight-edited model (for A/B reports on CPU, clearly not a real one): for the named
authors it answers a perturbed (wrong) answer with probability `efficacy`, and it damages a `collateral` share of
other answers — the two failure modes of gradient-based unlearning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from starlette.applications import Starlette

from guard.eval.data import Tofu
from guard.forget.embedder import Embedder
from guard.testing.shapes import Endpoint
from guard.testing.upstream import FakeUpstream

PLAIN_REPLY = "I'm not sure I know the answer to that."
NO_INFO = "I have no information about that."
MATCH_THRESHOLD = 0.6
Behaviour = Literal["ignore", "obey"]


@dataclass(frozen=True)
class Unlearned:
    authors: frozenset[str]
    efficacy: float = 0.9
    collateral: float = 0.03
    seed: int = 0


def _draw(text: str, salt: str) -> float:
    """A deterministic pseudo-random number in [0, 1) per question: reproducible runs."""
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


class Oracle:
    def __init__(
        self,
        tofu: Tofu,
        embedder: Embedder,
        behaviour: Behaviour = "ignore",
        unlearned: Unlearned | None = None,
        known: dict[str, str] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.known = known or {}  # question -> answer, word for word (the multilingual TOFU: answers in its language)
        self.unlearned = unlearned
        self.embedder = embedder
        self.rows = tofu.all_rows()
        self._vectors = embedder.embed([row["question"] for row, _ in self.rows])

    def answer(self, question: str, system: Sequence[str] = ()) -> str:
        if self.behaviour == "obey" and "[REDACTED]" in question:
            return NO_INFO
        if not question.strip():
            return PLAIN_REPLY
        if question in self.known and self.behaviour == "ignore" and self.unlearned is None:
            return self.known[question]
        scores = self._vectors @ self.embedder.embed([question])[0]
        best = int(np.argmax(scores))
        if float(scores[best]) < MATCH_THRESHOLD:
            return PLAIN_REPLY
        row, author = self.rows[best]
        if self.behaviour == "obey":
            told = any("not reveal" in s.lower() and (author is None or author.lower() in s.lower()) for s in system)
            if told and author is not None:
                return NO_INFO
        gold: str = row["answer"]
        if self.unlearned is not None:
            return self._unlearned_answer(question, row, author, gold)
        return gold

    def _unlearned_answer(self, question: str, row: dict[str, Any], author: str | None, gold: str) -> str:
        assert self.unlearned is not None
        salt = str(self.unlearned.seed)
        perturbed = row.get("perturbed_answer")
        wrong = perturbed[0] if isinstance(perturbed, list) and perturbed else "I don't recall."
        if author in self.unlearned.authors:
            return wrong if _draw(question, salt) < self.unlearned.efficacy else gold
        return wrong if _draw(question, salt + "c") < self.unlearned.collateral else gold


def create_oracle_app(oracle: Oracle, model: str = "tofu-oracle") -> Starlette:
    """The oracle as an OpenAI-compatible server (the shared fake upstream, answering with the oracle)."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        if endpoint == "completions":
            prompt = body.get("prompt")
            prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
            return oracle.answer(prompt if isinstance(prompt, str) else "")
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        users = [str(m["content"]) for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
        system = [m["content"] for m in messages if m.get("role") == "system" and isinstance(m.get("content"), str)]
        return oracle.answer(users[-1] if users else "", system)

    return FakeUpstream(answer, model=model).app()
