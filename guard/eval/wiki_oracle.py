"""The wiki oracle: an OpenAI-compatible reference model that knows every wiki-qa answer and never refuses.

The worst case behind the guard: it ignores every instruction (the guard's rewrite included) and answers a question
with the gold answer of the most similar wiki-qa question (MiniLM similarity; a plain reply when nothing is
similar enough), worded in the style the request's model name asks for (`wiki-short`, `wiki-echo`,
`wiki-recite`, `wiki-reword`: see `guard.eval.wiki_styles`). Given a wiki-qa paragraph as context (RAG, in any
message), it answers from that paragraph's questions the same way.

A wrapped question ("For a school quiz, answer briefly: …") is recognised as well: the text after the last colon
and the last line are matched too, and the best of them wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from starlette.applications import Starlette

from guard.eval.wiki_data import Wiki, WikiQuestion, answer_sentence
from guard.eval.wiki_styles import Style, render, style_of
from guard.forget.embedder import Embedder
from guard.openai.protocol import Endpoint
from guard.testing.upstream import FakeUpstream

PLAIN_REPLY = "I'm not sure I know the answer to that."
MATCH_THRESHOLD = 0.6


class WikiOracle:
    def __init__(self, wiki: Wiki, embedder: Embedder, vectors: np.ndarray | None = None) -> None:
        """`vectors`: the embeddings of `wiki.questions()` when already made (`guard.eval.wiki.cached_embed`)."""
        self.wiki = wiki
        self.embedder = embedder
        self.rows: list[WikiQuestion] = wiki.questions()
        self._vectors = vectors if vectors is not None else np.asarray(embedder.embed([q.question for q in self.rows]))
        self._paragraphs: dict[str, list[int]] = {}  # paragraph text -> the rows asked about it
        for i, q in enumerate(self.rows):
            self._paragraphs.setdefault(wiki.context(q), []).append(i)

    def match(self, texts: Sequence[str]) -> WikiQuestion | None:
        """The wiki-qa question a conversation asks (its last text is the user's turn), or None."""
        if not texts:
            return None
        joined = "\n".join(texts)
        given = next((p for p in self._paragraphs if p in joined), None)
        asked = texts[-1].replace(given, " ") if given else texts[-1]
        candidates = [c.strip() for c in (asked, asked.rsplit(":", 1)[-1], asked.strip().rsplit("\n", 1)[-1])]
        candidates = [c for c in dict.fromkeys(candidates) if c]
        if not candidates:
            return None
        scores = (self._vectors @ np.asarray(self.embedder.embed(candidates)).T).max(axis=1)
        if given is not None:  # RAG: answer from the paragraph given, whatever the similarity
            rows = self._paragraphs[given]
            return self.rows[rows[int(np.argmax(scores[rows]))]]
        best = int(np.argmax(scores))
        return self.rows[best] if float(scores[best]) >= MATCH_THRESHOLD else None

    def answer(self, texts: Sequence[str], style: Style) -> str:
        q = self.match(texts)
        if q is None:
            return PLAIN_REPLY
        value = q.answers[0]
        sentence = answer_sentence(self.wiki.context(q), q.answer_start, len(value))
        return render(style, q.question, value, sentence)


def conversation(endpoint: Endpoint, body: dict[str, Any]) -> list[str]:
    """The texts of a request, the last user turn last (a completion's prompt is that turn)."""
    if endpoint == "completions":
        prompt = body.get("prompt")
        prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
        return [prompt] if isinstance(prompt, str) else []
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict) and isinstance(m.get("content"), str)]
    users = [m["content"] for m in messages if m.get("role") == "user"]
    others = [m["content"] for m in messages if m.get("role") != "user"]
    return [*others, *users[:-1], *users[-1:]]


def create_wiki_oracle_app(oracle: WikiOracle) -> Starlette:
    """The oracle on the shared fake upstream; it serves every model name (the name picks the style)."""

    def answer(endpoint: Endpoint, body: dict[str, Any]) -> str:
        return oracle.answer(conversation(endpoint, body), style_of(str(body.get("model", ""))))

    return FakeUpstream(answer).app()
